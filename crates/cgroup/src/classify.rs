//! Container classification of a cgroup id, mirroring coroot-node-agent's `containerByCgroup`.
//!
//! Plain string scanning instead of regexes: it runs once per new cgroup, and each rule of
//! coroot's regexes (`[a-z0-9]{64}`, `crio-…`, `cri-containerd[-:]…`) is a few lines here.

/// Container classification from a cgroup id, exactly as coroot-node-agent's containerByCgroup
/// with the kinds the Coroot backend understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    /// Not a container: root, user.slice, init.scope, session scopes, ... (never exported)
    NotAContainer,
    /// `/docker/<64hex>` or `/system.slice/docker-<64hex>.scope`; final name needs Docker metadata.
    Docker {
        /// The 64-character container id.
        id: String,
    },
    /// Anything under kubepods (cgroupfs and systemd drivers, any QoS class). `runtime` is the hint
    /// the path gives: `cri-containerd-<id>` / `cri-containerd:<id>` -> Containerd, `crio-<id>` -> Crio,
    /// `docker-<id>.scope` -> Docker, bare 64-hex -> None (could be docker-shim or containerd cgroupfs).
    /// `crio-conmon-*` paths -> NotAContainer. The pause/sandbox container is recognised later by metadata.
    Kubernetes {
        /// Runtime hinted by the path, if any.
        runtime: Option<Runtime>,
        /// The 64-character container id.
        id: String,
    },
    /// A plain containerd namespace cgroup `/<namespace>/<id>` (exactly two components, none of the
    /// known prefixes). Needs containerd to confirm; may also be an unknown two-level cgroup.
    ContainerdNamespace {
        /// First path component (the containerd namespace, e.g. "default").
        namespace: String,
        /// Second path component (the container id within that namespace).
        id: String,
    },
    /// systemd service: `container_id` is final, e.g. "/system.slice/foo-bar.service" (`\x2d` unescaped
    /// to `-`); also runtime.slice, reserved.slice, kube.slice, azure.slice like coroot. `.scope`
    /// units under system.slice that are not docker are NotAContainer; `.slice` alone NotAContainer.
    SystemdService {
        /// Final container id, e.g. "/system.slice/nginx.service".
        container_id: String,
    },
    /// LXC `/lxc/<name>` or `/lxc.payload.<name>`: container_id "/lxc/<name>".
    Lxc {
        /// Final container id "/lxc/<name>".
        container_id: String,
    },
    /// Talos `/system/<name>` or `/podruntime/<name>`: container_id "/talos/<name>".
    Talos {
        /// Final container id "/talos/<name>".
        container_id: String,
    },
    /// Could not be classified (kept for counting/debugging, never exported).
    Unknown,
}

/// Container runtime hinted by a Kubernetes cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (dockershim / cri-dockerd), `docker-<id>.scope`.
    Docker,
    /// containerd's CRI plugin, `cri-containerd-<id>`.
    Containerd,
    /// CRI-O, `crio-<id>`.
    Crio,
}

const ID_LEN: usize = 64;

/// Classifies a cgroup id (as returned by [`crate::ProcessCgroups::id`]) into a container kind.
pub fn classify(cgroup_id: &str) -> ContainerKind {
    // Talos runs its init directly in /init.
    if cgroup_id == "/init" {
        return ContainerKind::Talos {
            container_id: "/talos/init".to_owned(),
        };
    }
    let trimmed = cgroup_id.trim_start_matches('/');
    let mut parts = trimmed.split('/');
    let prefix = parts.next().unwrap_or("");
    let second = parts.next();

    // LXC 4+ puts the container at the top level; checked before the one-component rule.
    if let Some(name) = prefix.strip_prefix("lxc.payload.") {
        return if name.is_empty() {
            ContainerKind::Unknown
        } else {
            ContainerKind::Lxc {
                container_id: format!("/lxc/{name}"),
            }
        };
    }
    let Some(second) = second else {
        // "/", "/foo": a process right in a top-level cgroup is a standalone process.
        return ContainerKind::NotAContainer;
    };

    match prefix {
        // Podman (libpod-*) under user.slice / machine.slice is not a kind the backend knows.
        "user.slice" | "init.scope" | "systemd" | "machine.slice" => {
            return ContainerKind::NotAContainer;
        }
        _ => {}
    }
    if prefix == "docker" || (prefix == "system.slice" && second.starts_with("docker-")) {
        return match find_id(cgroup_id) {
            Some(id) => ContainerKind::Docker { id: id.to_owned() },
            None => ContainerKind::Unknown,
        };
    }
    if cgroup_id.contains("kubepods") {
        return classify_kubepods(cgroup_id);
    }
    match prefix {
        "system" | "podruntime" => {
            if second.is_empty() {
                return ContainerKind::Unknown;
            }
            ContainerKind::Talos {
                container_id: format!("/talos/{second}"),
            }
        }
        "system.slice" | "runtime.slice" | "reserved.slice" | "kube.slice" | "azure.slice" => {
            if cgroup_id.contains("libpod-") {
                // Podman containers and their conmon: not supported by the backend's id forms.
                return ContainerKind::Unknown;
            }
            // Session/transient scopes (and anything nested in one) are not services.
            if cgroup_id.ends_with(".scope") {
                return ContainerKind::NotAContainer;
            }
            if second.is_empty() {
                return ContainerKind::Unknown;
            }
            ContainerKind::SystemdService {
                container_id: format!("/{prefix}/{}", second.replace("\\x2d", "-")),
            }
        }
        "lxc" => {
            if second.is_empty() {
                return ContainerKind::Unknown;
            }
            ContainerKind::Lxc {
                container_id: format!("/lxc/{second}"),
            }
        }
        _ => {
            if parts.next().is_none() && !prefix.is_empty() && !second.is_empty() {
                ContainerKind::ContainerdNamespace {
                    namespace: prefix.to_owned(),
                    id: second.to_owned(),
                }
            } else {
                ContainerKind::Unknown
            }
        }
    }
}

fn classify_kubepods(path: &str) -> ContainerKind {
    if let Some(id) = id_after(path, "crio-") {
        return kube(Some(Runtime::Crio), id);
    }
    // conmon is CRI-O's per-container monitor process: not the workload.
    if path.contains("crio-conmon-") {
        return ContainerKind::NotAContainer;
    }
    if let Some(id) =
        id_after(path, "cri-containerd-").or_else(|| id_after(path, "cri-containerd:"))
    {
        return kube(Some(Runtime::Containerd), id);
    }
    match find_id_at(path) {
        Some(start) => {
            let runtime = path[..start]
                .ends_with("docker-")
                .then_some(Runtime::Docker);
            kube(runtime, &path[start..start + ID_LEN])
        }
        // The pod-level or QoS-level cgroup itself (coroot's "sandbox" type): nothing to export.
        None => ContainerKind::NotAContainer,
    }
}

fn kube(runtime: Option<Runtime>, id: &str) -> ContainerKind {
    ContainerKind::Kubernetes {
        runtime,
        id: id.to_owned(),
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Leftmost run of 64 `[a-z0-9]` bytes (coroot's `([a-z0-9]{64})`, unanchored).
fn find_id(s: &str) -> Option<&str> {
    find_id_at(s).map(|start| &s[start..start + ID_LEN])
}

fn find_id_at(s: &str) -> Option<usize> {
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if is_id_byte(b) {
            run += 1;
            if run == ID_LEN {
                return Some(i + 1 - ID_LEN);
            }
        } else {
            run = 0;
        }
    }
    None
}

/// First occurrence of `marker` directly followed by 64 id bytes (coroot's `marker([a-z0-9]{64})`).
fn id_after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = s[from..].find(marker) {
        let start = from + pos + marker.len();
        let candidate = s.as_bytes().get(start..start + ID_LEN);
        if candidate.is_some_and(|c| c.iter().all(|&b| is_id_byte(b))) {
            return Some(&s[start..start + ID_LEN]);
        }
        from = from + pos + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "73051af271105c07e1f493b34856a77e665e3b0b4fc72f76c807dfbffeb881bd";

    fn docker(id: &str) -> ContainerKind {
        ContainerKind::Docker { id: id.into() }
    }
    fn k8s(runtime: Option<Runtime>, id: &str) -> ContainerKind {
        ContainerKind::Kubernetes {
            runtime,
            id: id.into(),
        }
    }
    fn service(id: &str) -> ContainerKind {
        ContainerKind::SystemdService {
            container_id: id.into(),
        }
    }
    fn lxc(id: &str) -> ContainerKind {
        ContainerKind::Lxc {
            container_id: id.into(),
        }
    }
    fn talos(id: &str) -> ContainerKind {
        ContainerKind::Talos {
            container_id: id.into(),
        }
    }

    #[test]
    fn classification_table() {
        use ContainerKind::{NotAContainer, Unknown};
        let cases: Vec<(String, ContainerKind)> = vec![
            // Docker, cgroupfs and systemd drivers.
            (format!("/docker/{ID}"), docker(ID)),
            (format!("/system.slice/docker-{ID}.scope"), docker(ID)),
            ("/docker/not-an-id".into(), Unknown),
            // Kubernetes, containerd with the systemd driver.
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice/cri-containerd-{ID}.scope"),
                k8s(Some(Runtime::Containerd), ID),
            ),
            // containerd systemd driver nested under containerd.service (cri-containerd:<id>).
            (
                format!("/system.slice/containerd.service/kubepods-burstable-pod4ed02c0b_0df8_4d14_a30e_fd589ee4143a.slice:cri-containerd:{ID}"),
                k8s(Some(Runtime::Containerd), ID),
            ),
            // containerd (or dockershim) with the cgroupfs driver: bare id, no runtime hint.
            (
                format!("/kubepods/besteffort/pod0d08203e-255a-11e9-8cd9-0007cb0b2cc8/{ID}"),
                k8s(None, ID),
            ),
            // Guaranteed QoS: no QoS level in the path.
            (
                format!("/kubepods/poda38c12e8-255a-11e9-8cd9-0007cb0b2cc8/{ID}"),
                k8s(None, ID),
            ),
            // Child cgroup inside a container cgroup.
            (
                format!("/kubepods/besteffort/pod0d08203e-255a-11e9-8cd9-0007cb0b2cc8/{ID}/kube-proxy"),
                k8s(None, ID),
            ),
            // docker-shim with the systemd driver.
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8712f785_1a3e_41ec_a00b_e2dcc77431cb.slice/docker-{ID}.scope"),
                k8s(Some(Runtime::Docker), ID),
            ),
            // CRI-O, both drivers, and a nested "container" child.
            (
                format!("/kubepods/poda48c12e8-255a-11e9-8cd9-0007cb0b2cc8/crio-{ID}"),
                k8s(Some(Runtime::Crio), ID),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podea19ff5d_943a_4466_a07e_a71e9e50cc62.slice/crio-{ID}.scope/container"),
                k8s(Some(Runtime::Crio), ID),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podea19ff5d_943a_4466_a07e_a71e9e50cc62.slice/crio-conmon-{ID}.scope"),
                NotAContainer,
            ),
            // The pod-level cgroup itself.
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podea19ff5d_943a_4466_a07e_a71e9e50cc62.slice".into(),
                NotAContainer,
            ),
            // systemd services.
            ("/system.slice/nginx.service".into(), service("/system.slice/nginx.service")),
            (
                "/system.slice/system-serial\\x2dgetty.slice".into(),
                service("/system.slice/system-serial-getty.slice"),
            ),
            (
                "/system.slice/foo\\x2dbar.service".into(),
                service("/system.slice/foo-bar.service"),
            ),
            (
                "/system.slice/system-postgresql.slice/postgresql@9.4-main.service".into(),
                service("/system.slice/system-postgresql.slice"),
            ),
            (
                "/system.slice/foo.service/child".into(),
                service("/system.slice/foo.service"),
            ),
            ("/runtime.slice/kubelet.service".into(), service("/runtime.slice/kubelet.service")),
            ("/reserved.slice/kubelet.service".into(), service("/reserved.slice/kubelet.service")),
            ("/kube.slice/kubelet.service".into(), service("/kube.slice/kubelet.service")),
            ("/azure.slice/walinuxagent.service".into(), service("/azure.slice/walinuxagent.service")),
            ("/system.slice/session-3.scope".into(), NotAContainer),
            ("/system.slice".into(), NotAContainer),
            ("/system.slice/libpod-conmon-abc.scope".into(), Unknown),
            // Not containers.
            ("/user.slice/user-1000.slice/session-2.scope".into(), NotAContainer),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/kubepods-x".into(), NotAContainer),
            ("/init.scope".into(), NotAContainer),
            ("/init.scope/child".into(), NotAContainer),
            ("/".into(), NotAContainer),
            ("".into(), NotAContainer),
            ("/toplevel".into(), NotAContainer),
            ("/machine.slice/libpod-abc.scope".into(), NotAContainer),
            // LXC.
            ("/lxc/mysql-primary-db".into(), lxc("/lxc/mysql-primary-db")),
            ("/lxc/web/ns/system.slice".into(), lxc("/lxc/web")),
            ("/lxc.payload.web".into(), lxc("/lxc/web")),
            ("/lxc.payload.web/system.slice/nginx.service".into(), lxc("/lxc/web")),
            ("/lxc.payload.".into(), Unknown),
            // Talos.
            ("/system/dashboard".into(), talos("/talos/dashboard")),
            ("/podruntime/kubelet".into(), talos("/talos/kubelet")),
            ("/podruntime/runtime".into(), talos("/talos/runtime")),
            ("/init".into(), talos("/talos/init")),
            // containerd namespaces (ctr run), and what is not one.
            (
                "/default/mycontainer".into(),
                ContainerKind::ContainerdNamespace {
                    namespace: "default".into(),
                    id: "mycontainer".into(),
                },
            ),
            ("/default/mycontainer/child".into(), Unknown),
        ];
        let mut failures = Vec::new();
        for (path, want) in &cases {
            let got = classify(path);
            if &got != want {
                failures.push(format!("{path}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn id_scanning_is_leftmost_and_exact_length() {
        let long = format!("{ID}ff");
        assert_eq!(find_id(&format!("/docker/{long}")), Some(&long[..64]));
        assert_eq!(find_id(&ID[..63]), None);
        // Upper case is not an id byte (coroot's regex is [a-z0-9]).
        assert_eq!(find_id(&ID.to_uppercase()), None);
        assert_eq!(id_after("crio-short/crio-", "crio-"), None);
        let s = format!("crio-conmon-x/crio-{ID}");
        assert_eq!(id_after(&s, "crio-"), Some(ID));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "/",
            "//",
            "///x",
            "/ü/é",
            "/kubepods/ü",
            "/docker/\u{1F600}",
            "/lxc//",
            "/system//x",
        ] {
            let _ = classify(s);
        }
        assert_eq!(classify("/system//x"), ContainerKind::Unknown);
    }
}
