//! Provider detection from DMI/SMBIOS strings: pure, and the only thing done on machines that
//! are not recognised as a cloud instance (so they never see a metadata request).

use std::path::Path;

use crate::Provider;

/// The firmware strings detection looks at. A missing or unreadable file is an empty string:
/// many VMs (and this project's CI VM) have no DMI at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    /// `/sys/class/dmi/id/sys_vendor`
    pub sys_vendor: String,
    /// `/sys/class/dmi/id/board_vendor`
    pub board_vendor: String,
    /// `/sys/class/dmi/id/chassis_vendor`
    pub chassis_vendor: String,
    /// `/sys/class/dmi/id/chassis_asset_tag`
    pub chassis_asset_tag: String,
    /// `/sys/class/dmi/id/product_name`
    pub product_name: String,
    /// `/sys/hypervisor/uuid` (Xen guests only; old AWS instance types start it with `ec2`).
    pub hypervisor_uuid: String,
}

/// Each file is a single short line; reading more would only mean a corrupt or fake sysfs.
const MAX_DMI_FILE_BYTES: u64 = 4096;

impl Dmi {
    /// Reads the strings under `<host_root>/sys/class/dmi/id` and `<host_root>/sys/hypervisor`.
    /// Never fails: an unreadable file counts as absent.
    pub fn read(host_root: &Path) -> Self {
        let dmi = host_root.join("sys/class/dmi/id");
        Self {
            sys_vendor: read_small(&dmi.join("sys_vendor")),
            board_vendor: read_small(&dmi.join("board_vendor")),
            chassis_vendor: read_small(&dmi.join("chassis_vendor")),
            chassis_asset_tag: read_small(&dmi.join("chassis_asset_tag")),
            product_name: read_small(&dmi.join("product_name")),
            hypervisor_uuid: read_small(&host_root.join("sys/hypervisor/uuid")),
        }
    }
}

fn read_small(path: &Path) -> String {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut buf = Vec::new();
    match file.take(MAX_DMI_FILE_BYTES).read_to_end(&mut buf) {
        Ok(_) => String::from_utf8_lossy(&buf).trim().to_owned(),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "Cannot read DMI file");
            String::new()
        }
    }
}

/// Which cloud this machine is, from its firmware strings; `None` for bare metal, plain
/// KVM/QEMU, VMware, Xen outside EC2, and anything unknown.
///
/// The rules and their order are coroot-node-agent's (`node/metadata/detect_linux.go`), so both
/// agents classify a machine the same way; the last group adds unambiguous strings coroot does
/// not check (instances whose board vendor is empty but whose system vendor is set).
pub fn detect_provider(dmi: &Dmi) -> Option<Provider> {
    if dmi.hypervisor_uuid.to_ascii_lowercase().starts_with("ec2") {
        return Some(Provider::Aws);
    }
    match dmi.board_vendor.trim() {
        "Amazon EC2" => return Some(Provider::Aws),
        "Google" => return Some(Provider::Gcp),
        "Microsoft Corporation" => return Some(Provider::Azure),
        "DigitalOcean" => return Some(Provider::DigitalOcean),
        _ => {}
    }
    match dmi.sys_vendor.trim() {
        "Hetzner" => return Some(Provider::Hetzner),
        "Alibaba Cloud" => return Some(Provider::Alibaba),
        "Scaleway" => return Some(Provider::Scaleway),
        _ => {}
    }
    if dmi.chassis_vendor.starts_with("IBM:Cloud Compute Server") {
        return Some(Provider::Ibm);
    }
    if dmi.chassis_asset_tag.trim() == "OracleCloud.com" {
        return Some(Provider::Oracle);
    }
    // Beyond coroot: same vendors, seen in sys_vendor/product_name only.
    match (dmi.sys_vendor.trim(), dmi.product_name.trim()) {
        ("Amazon EC2", _) => Some(Provider::Aws),
        ("Google", _) | (_, "Google Compute Engine") => Some(Provider::Gcp),
        ("DigitalOcean", _) => Some(Provider::DigitalOcean),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Dmi {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/dmi")
            .join(name);
        assert!(root.is_dir(), "missing fixture {}", root.display());
        Dmi::read(&root)
    }

    #[test]
    fn fixtures_detect_their_provider() {
        let cases = [
            ("aws-nitro", Some(Provider::Aws)),
            ("aws-xen", Some(Provider::Aws)),
            ("aws-metal", Some(Provider::Aws)),
            ("gcp", Some(Provider::Gcp)),
            ("azure", Some(Provider::Azure)),
            ("hetzner", Some(Provider::Hetzner)),
            ("digitalocean", Some(Provider::DigitalOcean)),
            ("alibaba", Some(Provider::Alibaba)),
            ("scaleway", Some(Provider::Scaleway)),
            ("oracle", Some(Provider::Oracle)),
            ("ibm", Some(Provider::Ibm)),
            ("kvm", None),
            ("vmware", None),
            ("xen-not-ec2", None),
            ("baremetal", None),
            ("no-dmi", None),
        ];
        for (name, want) in cases {
            assert_eq!(detect_provider(&fixture(name)), want, "fixture {name}");
        }
    }

    #[test]
    fn read_trims_and_tolerates_missing_files() {
        let dmi = fixture("aws-xen");
        assert_eq!(dmi.sys_vendor, "Xen");
        assert!(dmi.board_vendor.is_empty());
        assert!(dmi.hypervisor_uuid.starts_with("ec2"));
        assert_eq!(fixture("no-dmi"), Dmi::default());
    }

    #[test]
    fn hypervisor_uuid_prefix_is_case_insensitive() {
        let dmi = Dmi {
            hypervisor_uuid: "EC2A1B2C-0000-0000-0000-000000000000".into(),
            ..Dmi::default()
        };
        assert_eq!(detect_provider(&dmi), Some(Provider::Aws));
    }

    #[test]
    fn oversized_file_is_truncated_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        std::fs::write(id.join("sys_vendor"), "A".repeat(100_000)).unwrap();
        let dmi = Dmi::read(dir.path());
        assert_eq!(dmi.sys_vendor.len(), MAX_DMI_FILE_BYTES as usize);
        assert_eq!(detect_provider(&dmi), None);
    }
}
