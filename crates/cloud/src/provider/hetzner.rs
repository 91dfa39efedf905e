//! Hetzner Cloud: a YAML document from `/hetzner/v1/metadata`. Fields and labels as
//! coroot-node-agent's `hetzner.go`. Only top-level `key: scalar` lines are needed, so a
//! small line parser replaces a YAML library.

use crate::http::{MetadataClient, join};
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = join(base, "/hetzner/v1/metadata");
    let body = client.get_required(&url, &[]).await?;
    parse(&url, &body)
}

/// The labels from the metadata YAML.
pub(crate) fn parse(url: &str, body: &str) -> Result<CloudInfo, Error> {
    let field = |key: &str| top_level_scalar(body, key).unwrap_or_default();
    let info = CloudInfo {
        instance_id: field("instance-id"),
        region: field("region"),
        availability_zone: field("availability-zone"),
        local_ipv4: field("local-ipv4"),
        public_ipv4: field("public-ipv4"),
        ..CloudInfo::default()
    };
    if info.instance_id.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "instance-id",
        });
    }
    Ok(info)
}

/// The value of a top-level `key: value` line, unquoted; `None` when absent or not a scalar
/// (block values such as `public-keys:` followed by an indented list).
pub(crate) fn top_level_scalar(yaml: &str, key: &str) -> Option<String> {
    yaml.lines()
        .filter(|l| !l.starts_with([' ', '\t', '-', '#']))
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| unquote(strip_comment(v.trim())))
        .filter(|v| !matches!(v.as_str(), "|" | ">" | "|-" | ">-" | "~" | "null"))
}

fn strip_comment(v: &str) -> &str {
    if v.starts_with(['\'', '"']) {
        return v;
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

fn unquote(v: &str) -> String {
    let quoted = v.len() >= 2
        && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"')));
    if quoted {
        v[1..v.len() - 1].to_owned()
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_response() {
        let body = include_str!("../../testdata/responses/hetzner_metadata.yaml");
        let info = parse("u", body).unwrap();
        assert_eq!(
            info,
            CloudInfo {
                instance_id: "42424242".into(),
                region: "eu-central".into(),
                availability_zone: "fsn1-dc14".into(),
                local_ipv4: "".into(),
                public_ipv4: "203.0.113.10".into(),
                ..CloudInfo::default()
            }
        );
    }

    #[test]
    fn scalars_quotes_blocks_and_comments() {
        let y = "a: 'x'\nb: \"y\"\nc: |\n  z\nd: v # note\n  e: nested\n";
        assert_eq!(top_level_scalar(y, "a").as_deref(), Some("x"));
        assert_eq!(top_level_scalar(y, "b").as_deref(), Some("y"));
        assert_eq!(top_level_scalar(y, "c"), None);
        assert_eq!(top_level_scalar(y, "d").as_deref(), Some("v"));
        assert_eq!(top_level_scalar(y, "e"), None);
        assert!(matches!(
            parse("u", "garbage"),
            Err(Error::MissingField { .. })
        ));
    }
}
