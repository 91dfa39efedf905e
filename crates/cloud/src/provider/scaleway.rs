//! Scaleway: shell-style `KEY=value` lines from `/conf` at 169.254.42.42. Fields and labels as
//! coroot-node-agent's `scaleway.go`: the region is the zone without its `-<n>` suffix.

use crate::http::{MetadataClient, join};
use crate::provider::strip_numeric_suffix;
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = join(base, "/conf");
    let body = client.get_required(&url, &[]).await?;
    parse(&url, &body)
}

/// The labels from the `/conf` text.
pub(crate) fn parse(url: &str, body: &str) -> Result<CloudInfo, Error> {
    let field = |key: &str| {
        body.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| unquote(v.trim()))
            .unwrap_or_default()
    };
    let zone = field("ZONE");
    let info = CloudInfo {
        instance_id: field("ID"),
        region: strip_numeric_suffix(&zone),
        availability_zone: zone,
        instance_type: field("COMMERCIAL_TYPE"),
        ..CloudInfo::default()
    };
    if info.instance_id.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "ID",
        });
    }
    Ok(info)
}

/// `/conf` values are shell words; some are single-quoted.
fn unquote(v: &str) -> String {
    v.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(v)
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_response() {
        let body = include_str!("../../testdata/responses/scaleway_conf.txt");
        let info = parse("u", body).unwrap();
        assert_eq!(
            info,
            CloudInfo {
                instance_id: "6cfd4a29-bb1c-4f8e-9b8e-6a1a2b3c4d5e".into(),
                region: "fr-par".into(),
                availability_zone: "fr-par-1".into(),
                instance_type: "PRO2-S".into(),
                ..CloudInfo::default()
            }
        );
        assert!(matches!(
            parse("u", "ZONE=fr-par-1"),
            Err(Error::MissingField { .. })
        ));
    }
}
