//! Oracle Cloud: one JSON document from `/opc/v2/instance/` with `Authorization: Bearer Oracle`
//! (IMDS v2 refuses requests without it). Fields and labels as coroot-node-agent's `oracle.go`:
//! the availability domain `xxxx:EU-FRANKFURT-1-AD-2` becomes `<region>-ad-2`.

use serde::Deserialize;

use crate::http::{MetadataClient, join, parse_json};
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = join(base, "/opc/v2/instance/");
    let body = client
        .get_required(&url, &[("Authorization", "Bearer Oracle")])
        .await?;
    parse(&url, &body)
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Instance {
    id: String,
    canonical_region_name: String,
    availability_domain: String,
    shape: String,
}

/// The labels from the instance document.
pub(crate) fn parse(url: &str, body: &str) -> Result<CloudInfo, Error> {
    let doc: Instance = parse_json(url, body)?;
    if doc.id.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "id",
        });
    }
    let availability_zone = ad_number(&doc.availability_domain)
        .map(|n| format!("{}-ad-{n}", doc.canonical_region_name))
        .unwrap_or_default();
    Ok(CloudInfo {
        instance_id: doc.id,
        region: doc.canonical_region_name,
        availability_zone,
        instance_type: doc.shape,
        ..CloudInfo::default()
    })
}

/// The `<n>` of a trailing `-AD-<n>`.
fn ad_number(domain: &str) -> Option<&str> {
    let (head, n) = domain.rsplit_once('-')?;
    (head.ends_with("-AD") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_response() {
        let body = include_str!("../../testdata/responses/oracle_instance.json");
        let info = parse("u", body).unwrap();
        assert_eq!(
            info,
            CloudInfo {
                instance_id: "ocid1.instance.oc1.eu-frankfurt-1.antheljexampleuniqueid".into(),
                region: "eu-frankfurt-1".into(),
                availability_zone: "eu-frankfurt-1-ad-2".into(),
                instance_type: "VM.Standard.E4.Flex".into(),
                ..CloudInfo::default()
            }
        );
    }

    #[test]
    fn odd_domains() {
        assert_eq!(ad_number("Uocm:PHX-AD-1"), Some("1"));
        assert_eq!(ad_number("PHX-AD-"), None);
        assert_eq!(ad_number("PHX-1"), None);
        assert!(matches!(parse("u", "{}"), Err(Error::MissingField { .. })));
    }
}
