//! The `volume` label of `container_resources_disk_*`: which named volume or Kubernetes
//! persistent volume is mounted at a container path.
//!
//! Kubernetes: kubelet mounts a persistent volume at
//! `/var/lib/kubelet/pods/<pod>/volumes/kubernetes.io~<plugin>/<pv-name>[/mount]` (or under
//! `volume-subpaths/` for subPath mounts); the PV name is the volume, as coroot reports it.
//! Secrets, config maps, projected and emptyDir volumes are no storage and get none.
//! Docker: a named volume (`docker run -v NAME:/path`) is reported by its name; coroot leaves
//! these empty, which loses the only name the user gave the data.

/// The volume name of a mount, from its source path on the host (Kubernetes PVs); None when the
/// source is not a persistent volume.
pub fn kubernetes_volume(source: &str) -> Option<&str> {
    // Dynamically provisioned volumes are named pvc-<uuid> wherever they sit (k3s's local-path
    // storage keeps them under /var/lib/rancher/k3s/storage/pvc-<uuid>_<ns>_<claim>).
    if let Some(pvc) = find_pvc_uuid(source) {
        return Some(pvc);
    }
    let (_, rest) = source.split_once("/volumes/kubernetes.io~")?;
    let (plugin, rest) = rest.split_once('/')?;
    if matches!(
        plugin,
        "secret" | "configmap" | "empty-dir" | "projected" | "downward-api"
    ) {
        return None;
    }
    let name = rest.split('/').next().filter(|n| !n.is_empty())?;
    Some(name)
}

/// The first `pvc-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lower-case hex) in `s`.
fn find_pvc_uuid(s: &str) -> Option<&str> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    const LEN: usize = 4 + 36;
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find("pvc-").map(|i| i + from) {
        let candidate = bytes.get(i + 4..i + LEN);
        if let Some(uuid) = candidate {
            let mut pos = 0;
            let ok = GROUPS.iter().enumerate().all(|(g, &n)| {
                let part = &uuid[pos..pos + n];
                pos += n;
                let hex = part
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
                let dash = g == GROUPS.len() - 1 || uuid.get(pos) == Some(&b'-');
                pos += 1;
                hex && dash
            });
            if ok {
                return Some(&s[i..i + LEN]);
            }
        }
        from = i + 4;
    }
    None
}

/// The volume of one Docker mount (`Mounts[]` of an inspect): a named volume's name, else a
/// Kubernetes PV from its source.
pub(crate) fn docker_volume(typ: Option<&str>, name: Option<&str>, source: &str) -> Option<String> {
    if typ == Some("volume")
        && let Some(name) = name.filter(|n| !n.is_empty())
    {
        return Some(name.to_owned());
    }
    kubernetes_volume(source).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_sources() {
        let pv = "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~csi/pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab/mount";
        assert_eq!(
            kubernetes_volume(pv),
            Some("pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab")
        );
        assert_eq!(
            kubernetes_volume(
                "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~aws-ebs/data-static"
            ),
            Some("data-static")
        );
        assert_eq!(
            kubernetes_volume(
                "/var/lib/rancher/k3s/storage/pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab_default_data"
            ),
            Some("pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab")
        );
        for none in [
            "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~secret/token",
            "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~configmap/cfg",
            "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~empty-dir/tmp",
            "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~projected/kube-api-access",
            "/var/lib/kubelet/pods/6c3d/volumes/kubernetes.io~csi/",
            "/srv/data",
            "/x/pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789a",
            "/x/pvc-4F1E2A3B-1c2d-4e5f-8a9b-0123456789ab",
            "",
        ] {
            assert_eq!(kubernetes_volume(none), None, "{none}");
        }
    }

    #[test]
    fn docker_mounts() {
        assert_eq!(
            docker_volume(
                Some("volume"),
                Some("pgdata"),
                "/var/lib/docker/volumes/pgdata/_data"
            ),
            Some("pgdata".into())
        );
        assert_eq!(docker_volume(Some("bind"), None, "/srv/data"), None);
        assert_eq!(docker_volume(Some("tmpfs"), None, ""), None);
    }
}
