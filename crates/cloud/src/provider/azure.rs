//! Azure IMDS: one JSON document from `/metadata/instance` with `Metadata: true`. Fields and
//! labels as coroot-node-agent's `azure.go`. The zone is reported as Azure gives it (`"1"`,
//! `"2"`, or empty for a regional VM); the Coroot server turns a numeric one into
//! `<region>-<n>` itself, so it must not be rewritten here.

use serde::Deserialize;

use crate::http::{MetadataClient, join, parse_json};
use crate::{CloudInfo, Error};

/// The API version coroot uses; IMDS keeps old versions available.
const PATH: &str = "/metadata/instance?api-version=2021-05-01&format=json";

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = join(base, PATH);
    let body = client.get_required(&url, &[("Metadata", "true")]).await?;
    parse(&url, &body)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Instance {
    compute: Compute,
    network: Network,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Compute {
    location: String,
    #[serde(rename = "vmId")]
    vm_id: String,
    vm_size: String,
    zone: String,
    subscription_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Network {
    interface: Vec<Interface>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Interface {
    ipv4: Ipv4,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Ipv4 {
    ip_address: Vec<IpAddress>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct IpAddress {
    private_ip_address: String,
    public_ip_address: String,
}

/// The labels from an IMDS `instance` document.
pub(crate) fn parse(url: &str, body: &str) -> Result<CloudInfo, Error> {
    let doc: Instance = parse_json(url, body)?;
    if doc.compute.vm_id.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "compute.vmId",
        });
    }
    let first_ip = doc
        .network
        .interface
        .first()
        .and_then(|i| i.ipv4.ip_address.first());
    Ok(CloudInfo {
        account_id: doc.compute.subscription_id,
        instance_id: doc.compute.vm_id,
        instance_type: doc.compute.vm_size,
        region: doc.compute.location,
        availability_zone: doc.compute.zone,
        local_ipv4: first_ip
            .map(|ip| ip.private_ip_address.clone())
            .unwrap_or_default(),
        public_ipv4: first_ip
            .map(|ip| ip.public_ip_address.clone())
            .unwrap_or_default(),
        ..CloudInfo::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_response() {
        let body = include_str!("../../testdata/responses/azure_instance.json");
        let info = parse("u", body).unwrap();
        assert_eq!(
            info,
            CloudInfo {
                account_id: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into(),
                instance_id: "02aab8a4-74ef-476e-8182-f6d2ba4166a6".into(),
                instance_type: "Standard_A3".into(),
                region: "westus".into(),
                availability_zone: "1".into(),
                local_ipv4: "10.144.133.132".into(),
                public_ipv4: "203.0.113.7".into(),
                ..CloudInfo::default()
            }
        );
    }

    #[test]
    fn no_network_and_missing_id() {
        let info = parse("u", r#"{"compute":{"vmId":"abc","location":"eastus"}}"#).unwrap();
        assert_eq!(info.instance_id, "abc");
        assert_eq!(info.local_ipv4, "");
        assert!(matches!(
            parse("u", r#"{"compute":{}}"#),
            Err(Error::MissingField { .. })
        ));
        assert!(matches!(parse("u", "[1,2]"), Err(Error::Json { .. })));
    }
}
