//! Alibaba Cloud ECS: plain-text fields under `/latest/meta-data/` at 100.100.100.200. As
//! coroot-node-agent's `alibaba.go`, every field is required (the service has them all for
//! any ECS instance) and there is no public IPv4 label.

use crate::http::{MetadataClient, join};
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = |path: &str| join(base, &format!("/latest/meta-data/{path}"));
    let get = async |path: &str| client.get_required(&url(path), &[]).await;
    Ok(CloudInfo {
        instance_id: get("instance-id").await?,
        region: get("region-id").await?,
        availability_zone: get("zone-id").await?,
        account_id: get("owner-account-id").await?,
        instance_type: get("instance/instance-type").await?,
        local_ipv4: get("private-ipv4").await?,
        ..CloudInfo::default()
    })
}
