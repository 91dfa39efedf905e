//! DigitalOcean: plain-text fields under `/metadata/v1/`. As coroot-node-agent's
//! `digital_ocean.go`: id and region, and the region doubles as the zone (DigitalOcean has no
//! zones inside a region). Both fields are required.

use crate::http::{MetadataClient, join};
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let url = |path: &str| join(base, &format!("/metadata/v1/{path}"));
    let instance_id = client.get_required(&url("id"), &[]).await?;
    let region = client.get_required(&url("region"), &[]).await?;
    Ok(CloudInfo {
        instance_id,
        availability_zone: region.clone(),
        region,
        ..CloudInfo::default()
    })
}
