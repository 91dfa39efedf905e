//! IBM Cloud VPC: an instance-identity token from `PUT /instance_identity/v1/token` with
//! `Metadata-Flavor: ibm`, then `/metadata/v1/instance` with `Authorization: Bearer <token>`.
//! Fields and labels as coroot-node-agent's `ibm.go`. Only plain http is spoken (coroot falls
//! back to https; this crate has no TLS, and the metadata service serves http when enabled).

use serde::Deserialize;

use crate::http::{MetadataClient, join, parse_json};
use crate::provider::strip_numeric_suffix;
use crate::{CloudInfo, Error};

const VERSION: &str = "version=2025-04-22";

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let token_url = join(base, &format!("/instance_identity/v1/token?{VERSION}"));
    let body = client
        .put(&token_url, &[("Metadata-Flavor", "ibm")])
        .await?;
    let token = parse_token(&token_url, &body)?;
    let url = join(base, &format!("/metadata/v1/instance?{VERSION}"));
    let bearer = format!("Bearer {token}");
    let body = client
        .get_required(&url, &[("Authorization", bearer.as_str())])
        .await?;
    parse(&url, &body)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Token {
    access_token: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Instance {
    id: String,
    profile: Named,
    zone: Named,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    name: String,
}

/// `access_token` of the token answer.
pub(crate) fn parse_token(url: &str, body: &str) -> Result<String, Error> {
    let token: Token = parse_json(url, body)?;
    if token.access_token.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "access_token",
        });
    }
    Ok(token.access_token)
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
    Ok(CloudInfo {
        instance_id: doc.id,
        region: strip_numeric_suffix(&doc.zone.name),
        availability_zone: doc.zone.name,
        instance_type: doc.profile.name,
        ..CloudInfo::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_responses() {
        let token = include_str!("../../testdata/responses/ibm_token.json");
        assert_eq!(
            parse_token("u", token).unwrap(),
            "eyJhbGciOiJSUzI1NiJ9.example"
        );
        let body = include_str!("../../testdata/responses/ibm_instance.json");
        let info = parse("u", body).unwrap();
        assert_eq!(
            info,
            CloudInfo {
                instance_id: "0717_e21b7391-2ca2-4ab5-84a8-b92157a633b0".into(),
                region: "us-south".into(),
                availability_zone: "us-south-1".into(),
                instance_type: "bx2-2x8".into(),
                ..CloudInfo::default()
            }
        );
        assert!(matches!(
            parse_token("u", "{}"),
            Err(Error::MissingField { .. })
        ));
    }
}
