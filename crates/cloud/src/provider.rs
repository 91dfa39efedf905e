//! The providers: their label names, metadata base URLs, and one fetch function each
//! (`provider/<name>.rs`, mirroring coroot-node-agent's `node/metadata/<name>.go`).

use crate::http::MetadataClient;
use crate::{CloudInfo, Error};

pub(crate) mod alibaba;
pub(crate) mod aws;
pub(crate) mod azure;
pub(crate) mod digitalocean;
pub(crate) mod gcp;
pub(crate) mod hetzner;
pub(crate) mod ibm;
pub(crate) mod oracle;
pub(crate) mod scaleway;

/// A cloud whose metadata service sonde can query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Amazon EC2 (IMDSv2).
    Aws,
    /// Google Compute Engine.
    Gcp,
    /// Microsoft Azure (IMDS).
    Azure,
    /// Hetzner Cloud.
    Hetzner,
    /// DigitalOcean Droplets.
    DigitalOcean,
    /// Alibaba Cloud ECS.
    Alibaba,
    /// Scaleway Instances.
    Scaleway,
    /// Oracle Cloud Infrastructure (IMDS v2).
    Oracle,
    /// IBM Cloud VPC.
    Ibm,
}

impl Provider {
    /// Every provider, in detection order.
    pub const ALL: [Provider; 9] = [
        Provider::Aws,
        Provider::Gcp,
        Provider::Azure,
        Provider::Hetzner,
        Provider::DigitalOcean,
        Provider::Alibaba,
        Provider::Scaleway,
        Provider::Oracle,
        Provider::Ibm,
    ];

    /// The `provider` label value, spelled exactly as coroot-node-agent spells it (the Coroot
    /// server lower-cases it and compares with "aws", "azure", ... for pricing and zones).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "AWS",
            Provider::Gcp => "GCP",
            Provider::Azure => "Azure",
            Provider::Hetzner => "Hetzner",
            Provider::DigitalOcean => "DigitalOcean",
            Provider::Alibaba => "Alibaba",
            Provider::Scaleway => "Scaleway",
            Provider::Oracle => "Oracle",
            Provider::Ibm => "IBM",
        }
    }

    /// Parses a label value case-insensitively (`aws`, `AWS`, `digitalocean` ...).
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Base URL (`http://host[:port]`) of each provider's metadata service; the provider appends
/// its documented paths. `Default` is the real link-local (or, for IBM, DNS) address; tests
/// and the agent's hidden `--cloud-metadata-base-url` point them at a local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// AWS IMDS: `/latest/api/token`, `/latest/meta-data/...`.
    pub aws: String,
    /// GCP: `/computeMetadata/v1/...` with `Metadata-Flavor: Google`.
    pub gcp: String,
    /// Azure IMDS: `/metadata/instance?api-version=2021-05-01&format=json` with `Metadata: true`.
    pub azure: String,
    /// Hetzner: `/hetzner/v1/metadata` (YAML).
    pub hetzner: String,
    /// DigitalOcean: `/metadata/v1/{id,region}`.
    pub digitalocean: String,
    /// Alibaba: `/latest/meta-data/...`.
    pub alibaba: String,
    /// Scaleway: `/conf` (shell-style `KEY=value` lines).
    pub scaleway: String,
    /// Oracle: `/opc/v2/instance/` with `Authorization: Bearer Oracle`.
    pub oracle: String,
    /// IBM: `/instance_identity/v1/token` (PUT) then `/metadata/v1/instance`.
    pub ibm: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        let link_local = "http://169.254.169.254".to_owned();
        Self {
            aws: link_local.clone(),
            gcp: link_local.clone(),
            azure: link_local.clone(),
            hetzner: link_local.clone(),
            digitalocean: link_local.clone(),
            alibaba: "http://100.100.100.200".to_owned(),
            scaleway: "http://169.254.42.42".to_owned(),
            oracle: link_local,
            ibm: "http://api.metadata.cloud.ibm.com".to_owned(),
        }
    }
}

impl Endpoints {
    /// Every provider at one base URL: only one provider is ever queried (the one DMI names),
    /// so one mock server can play whichever the test's DMI fixture says.
    pub fn all(base: &str) -> Self {
        let base = base.to_owned();
        Self {
            aws: base.clone(),
            gcp: base.clone(),
            azure: base.clone(),
            hetzner: base.clone(),
            digitalocean: base.clone(),
            alibaba: base.clone(),
            scaleway: base.clone(),
            oracle: base.clone(),
            ibm: base,
        }
    }

    /// The base URL of `provider`.
    pub fn get(&self, provider: Provider) -> &str {
        match provider {
            Provider::Aws => &self.aws,
            Provider::Gcp => &self.gcp,
            Provider::Azure => &self.azure,
            Provider::Hetzner => &self.hetzner,
            Provider::DigitalOcean => &self.digitalocean,
            Provider::Alibaba => &self.alibaba,
            Provider::Scaleway => &self.scaleway,
            Provider::Oracle => &self.oracle,
            Provider::Ibm => &self.ibm,
        }
    }
}

/// Queries `provider`'s metadata service at `base` once (no timeout here: the caller bounds it).
pub(crate) async fn fetch(
    provider: Provider,
    client: &MetadataClient,
    base: &str,
) -> Result<CloudInfo, Error> {
    let mut info = match provider {
        Provider::Aws => aws::fetch(client, base).await?,
        Provider::Gcp => gcp::fetch(client, base).await?,
        Provider::Azure => azure::fetch(client, base).await?,
        Provider::Hetzner => hetzner::fetch(client, base).await?,
        Provider::DigitalOcean => digitalocean::fetch(client, base).await?,
        Provider::Alibaba => alibaba::fetch(client, base).await?,
        Provider::Scaleway => scaleway::fetch(client, base).await?,
        Provider::Oracle => oracle::fetch(client, base).await?,
        Provider::Ibm => ibm::fetch(client, base).await?,
    };
    info.provider = provider.as_str().to_owned();
    Ok(info)
}

/// `zone` with a trailing `-<digits>` removed: Scaleway `fr-par-1` -> `fr-par`, IBM
/// `us-south-1` -> `us-south` (coroot's `-(\d+)$` rule).
pub(crate) fn strip_numeric_suffix(zone: &str) -> String {
    match zone.rsplit_once('-') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
            head.to_owned()
        }
        _ => zone.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.as_str()), Some(p));
            assert_eq!(Provider::from_name(&p.as_str().to_lowercase()), Some(p));
        }
        assert_eq!(Provider::from_name("openstack"), None);
    }

    #[test]
    fn numeric_suffix() {
        assert_eq!(strip_numeric_suffix("fr-par-1"), "fr-par");
        assert_eq!(strip_numeric_suffix("us-south-3"), "us-south");
        assert_eq!(strip_numeric_suffix("nl-ams"), "nl-ams");
        assert_eq!(strip_numeric_suffix("zone-"), "zone-");
        assert_eq!(strip_numeric_suffix(""), "");
    }

    #[test]
    fn default_endpoints_are_the_real_services() {
        let e = Endpoints::default();
        assert_eq!(e.get(Provider::Aws), "http://169.254.169.254");
        assert_eq!(e.get(Provider::Alibaba), "http://100.100.100.200");
        assert_eq!(e.get(Provider::Scaleway), "http://169.254.42.42");
        let all = Endpoints::all("http://127.0.0.1:9");
        assert!(
            Provider::ALL
                .iter()
                .all(|p| all.get(*p) == "http://127.0.0.1:9")
        );
    }
}
