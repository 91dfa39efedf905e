//! Cloud metadata for `node_cloud_info`: which cloud, account, region, zone and instance this
//! node is.
//!
//! The provider is detected from DMI strings read through the host root ([`detect_provider`]),
//! so bare metal and unknown machines never send a network request. On a recognised cloud a
//! background task queries that provider's metadata service ([`Endpoints`]) once at start and
//! then every [`CloudConfig::refresh_interval`], each fetch bounded by
//! [`CloudConfig::timeout`]. [`spawn`] returns at once; the scrape reads
//! [`CloudHandle::current`], which never waits. The rules mirror coroot-node-agent's
//! `node/metadata` package (see docs/cloud.md).

use std::path::PathBuf;
use std::time::Duration;

mod dmi;
mod error;
mod handle;
mod http;
mod provider;

pub use dmi::{Dmi, detect_provider};
pub use error::Error;
pub use handle::{CloudHandle, spawn};
pub use http::MAX_BODY_BYTES;
pub use provider::{Endpoints, Provider};

/// Default bound on one metadata fetch (coroot-node-agent's `metadataServiceTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time between refreshes: the life cycle (spot/on-demand) and IPs can change, but
/// rarely; an hourly request is invisible to the metadata service's rate limits.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// What the cloud subsystem needs; built once by the binary from its flags.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// DMI is read from `<host_root>/sys/class/dmi/id` and `<host_root>/sys/hypervisor/uuid`.
    pub host_root: PathBuf,
    /// `--provider`, `--region`, ...: fill in or override what the service says.
    pub overrides: Overrides,
    /// Bound on one whole fetch (every request of one provider together).
    pub timeout: Duration,
    /// Time between successful fetches; failures are retried sooner (see docs/cloud.md).
    pub refresh_interval: Duration,
    /// Base URL of each metadata service; `Default` is the real addresses.
    pub endpoints: Endpoints,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            host_root: PathBuf::from("/"),
            overrides: Overrides::default(),
            timeout: DEFAULT_TIMEOUT,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            endpoints: Endpoints::default(),
        }
    }
}

/// coroot-node-agent's `--provider`, `--region`, `--availability-zone`, `--instance-type` and
/// `--instance-life-cycle`. A `Some` that is empty counts as not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `provider` label (e.g. for a private cloud DMI does not recognise).
    pub provider: Option<String>,
    /// `region` label.
    pub region: Option<String>,
    /// `availability_zone` label.
    pub availability_zone: Option<String>,
    /// `instance_type` label.
    pub instance_type: Option<String>,
    /// `instance_life_cycle` label.
    pub instance_life_cycle: Option<String>,
}

impl Overrides {
    /// True when no override carries a value.
    pub fn is_empty(&self) -> bool {
        [
            &self.provider,
            &self.region,
            &self.availability_zone,
            &self.instance_type,
            &self.instance_life_cycle,
        ]
        .iter()
        .all(|o| given(o).is_none())
    }

    /// `info` with every given override replacing its field (coroot's `ApplyOverrides`).
    pub fn apply(&self, mut info: CloudInfo) -> CloudInfo {
        let fields = [
            (&self.provider, &mut info.provider),
            (&self.region, &mut info.region),
            (&self.availability_zone, &mut info.availability_zone),
            (&self.instance_type, &mut info.instance_type),
            (&self.instance_life_cycle, &mut info.instance_life_cycle),
        ];
        for (over, field) in fields {
            if let Some(v) = given(over) {
                v.clone_into(field);
            }
        }
        info
    }
}

fn given(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The labels of `node_cloud_info`, in the metric's label order. Empty string = unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudInfo {
    /// `provider`: `AWS`, `GCP`, `Azure`, `Hetzner`, `DigitalOcean`, `Alibaba`, `Scaleway`,
    /// `Oracle`, `IBM` (coroot's spelling), or the `--provider` override.
    pub provider: String,
    /// `account_id`: AWS account, GCP project id, Azure subscription, Alibaba owner account.
    pub account_id: String,
    /// `instance_id`
    pub instance_id: String,
    /// `instance_type`
    pub instance_type: String,
    /// `instance_life_cycle`: AWS `on-demand`/`spot`/`scheduled`, GCP `on-demand`/`preemptible`.
    pub instance_life_cycle: String,
    /// `region`
    pub region: String,
    /// `availability_zone`
    pub availability_zone: String,
    /// `availability_zone_id` (AWS only: the account-independent zone id, e.g. `use1-az4`).
    pub availability_zone_id: String,
    /// `local_ipv4`
    pub local_ipv4: String,
    /// `public_ipv4`
    pub public_ipv4: String,
}

impl CloudInfo {
    /// `(label name, value)` pairs in `node_cloud_info`'s label order, for the renderer.
    pub fn labels(&self) -> [(&'static str, &str); 10] {
        [
            ("provider", &self.provider),
            ("account_id", &self.account_id),
            ("instance_id", &self.instance_id),
            ("instance_type", &self.instance_type),
            ("instance_life_cycle", &self.instance_life_cycle),
            ("region", &self.region),
            ("availability_zone", &self.availability_zone),
            ("availability_zone_id", &self.availability_zone_id),
            ("local_ipv4", &self.local_ipv4),
            ("public_ipv4", &self.public_ipv4),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_given_fields() {
        let o = Overrides {
            region: Some("eu-west-1".into()),
            instance_life_cycle: Some("spot".into()),
            instance_type: Some("  ".into()),
            ..Overrides::default()
        };
        assert!(!o.is_empty());
        let info = o.apply(CloudInfo {
            provider: "AWS".into(),
            region: "us-east-1".into(),
            instance_type: "m5.large".into(),
            ..CloudInfo::default()
        });
        assert_eq!(info.provider, "AWS");
        assert_eq!(info.region, "eu-west-1");
        assert_eq!(info.instance_life_cycle, "spot");
        assert_eq!(info.instance_type, "m5.large", "blank override ignored");
        let blank = Overrides {
            provider: Some(String::new()),
            ..Overrides::default()
        };
        assert!(blank.is_empty());
    }

    #[test]
    fn labels_in_metric_order() {
        let info = CloudInfo {
            provider: "GCP".into(),
            public_ipv4: "1.2.3.4".into(),
            ..CloudInfo::default()
        };
        let labels = info.labels();
        assert_eq!(labels[0], ("provider", "GCP"));
        assert_eq!(labels[9], ("public_ipv4", "1.2.3.4"));
        let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names.join(","),
            "provider,account_id,instance_id,instance_type,instance_life_cycle,region,\
             availability_zone,availability_zone_id,local_ipv4,public_ipv4"
        );
    }
}
