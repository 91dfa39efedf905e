//! AWS EC2 through IMDSv2: a session token from `PUT /latest/api/token`, then each field from
//! `/latest/meta-data/<path>` with the token (IMDSv1, token-less GETs, is never used: many
//! accounts disable it). Fields and labels as coroot-node-agent's `aws.go`.

use serde::Deserialize;

use crate::http::{MetadataClient, join, parse_json};
use crate::{CloudInfo, Error};

/// Token lifetime asked for; a fetch needs it for well under a second.
const TOKEN_TTL_SECONDS: &str = "21600";

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let token = client
        .put(
            &join(base, "/latest/api/token"),
            &[("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)],
        )
        .await?;
    let token = token.trim();
    let headers = [("X-aws-ec2-metadata-token", token)];
    let url = |path: &str| join(base, &format!("/latest/meta-data/{path}"));
    // Only 404 means "not set" (public-ipv4 on a private instance, availability-zone-id on old
    // regions); any other failure fails the fetch so the last good labels are kept.
    let optional = async |path: &str| -> Result<String, Error> {
        Ok(client
            .get_optional(&url(path), &headers)
            .await?
            .unwrap_or_default())
    };
    let mut info = CloudInfo {
        instance_id: client.get_required(&url("instance-id"), &headers).await?,
        instance_type: optional("instance-type").await?,
        instance_life_cycle: optional("instance-life-cycle").await?,
        region: optional("placement/region").await?,
        availability_zone: optional("placement/availability-zone").await?,
        availability_zone_id: optional("placement/availability-zone-id").await?,
        local_ipv4: optional("local-ipv4").await?,
        public_ipv4: optional("public-ipv4").await?,
        ..CloudInfo::default()
    };
    let info_url = url("identity-credentials/ec2/info");
    if let Some(body) = client.get_optional(&info_url, &headers).await? {
        info.account_id = account_id(&info_url, &body)?;
    }
    if info.account_id.is_empty() {
        // Older instances lack identity-credentials; the identity document always has it.
        let doc_url = join(base, "/latest/dynamic/instance-identity/document");
        if let Some(body) = client.get_optional(&doc_url, &headers).await? {
            let doc: IdentityDocument = parse_json(&doc_url, &body)?;
            info.account_id = doc.account_id;
        }
    }
    Ok(info)
}

#[derive(Deserialize)]
struct Ec2Info {
    #[serde(rename = "AccountId", default)]
    account_id: String,
}

#[derive(Deserialize)]
struct IdentityDocument {
    #[serde(rename = "accountId", default)]
    account_id: String,
}

/// `AccountId` of `/latest/meta-data/identity-credentials/ec2/info`.
pub(crate) fn account_id(url: &str, body: &str) -> Result<String, Error> {
    Ok(parse_json::<Ec2Info>(url, body)?.account_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn account_id_from_ec2_info() {
        let body = include_str!("../../testdata/responses/aws_ec2_info.json");
        assert_eq!(account_id("u", body).unwrap(), "123456789012");
        assert!(account_id("u", "not json").is_err());
        assert_eq!(account_id("u", "{}").unwrap(), "");
    }

    #[test]
    fn account_id_from_identity_document() {
        let body = include_str!("../../testdata/responses/aws_identity_document.json");
        let doc: IdentityDocument = parse_json("u", body).unwrap();
        assert_eq!(doc.account_id, "123456789012");
    }
}
