//! Google Compute Engine: `/computeMetadata/v1/<path>` with `Metadata-Flavor: Google`
//! (the header is what the server checks; requests without it are refused). Fields and labels
//! as coroot-node-agent's `gcp.go`.

use crate::http::{MetadataClient, join};
use crate::{CloudInfo, Error};

pub(crate) async fn fetch(client: &MetadataClient, base: &str) -> Result<CloudInfo, Error> {
    let headers = [("Metadata-Flavor", "Google")];
    let url = |path: &str| join(base, &format!("/computeMetadata/v1/{path}"));
    let optional = async |path: &str| -> Result<String, Error> {
        Ok(client
            .get_optional(&url(path), &headers)
            .await?
            .unwrap_or_default())
    };
    let instance_id = client.get_required(&url("instance/id"), &headers).await?;
    let account_id = optional("project/project-id").await?;
    let local_ipv4 = optional("instance/network-interfaces/0/ip").await?;
    let public_ipv4 =
        optional("instance/network-interfaces/0/access-configs/0/external-ip").await?;
    let preemptible = optional("instance/scheduling/preemptible").await?;
    let machine_type = optional("instance/machine-type").await?;
    let zone_path = optional("instance/zone").await?;
    let (availability_zone, region) = zone_and_region(&zone_path);
    Ok(CloudInfo {
        account_id,
        instance_id,
        instance_type: last_of_four(&machine_type),
        instance_life_cycle: life_cycle(&preemptible).to_owned(),
        region,
        availability_zone,
        local_ipv4,
        public_ipv4,
        ..CloudInfo::default()
    })
}

/// `projects/<num>/machineTypes/<type>` -> `<type>` (coroot takes the 4th `/` part).
pub(crate) fn last_of_four(path: &str) -> String {
    let parts: Vec<&str> = path.splitn(4, '/').collect();
    match parts.as_slice() {
        [_, _, _, last] => (*last).to_owned(),
        _ => String::new(),
    }
}

/// `projects/<num>/zones/europe-west1-b` -> (`europe-west1-b`, `europe-west1`).
pub(crate) fn zone_and_region(path: &str) -> (String, String) {
    let zone = last_of_four(path);
    let region = zone
        .rsplit_once('-')
        .map(|(r, _)| r.to_owned())
        .unwrap_or_default();
    (zone, region)
}

/// `instance/scheduling/preemptible`: `TRUE` -> `preemptible`, `FALSE` -> `on-demand`
/// (Spot VMs also answer `TRUE`; coroot reports them as preemptible too).
pub(crate) fn life_cycle(preemptible: &str) -> &'static str {
    match preemptible.trim().to_ascii_lowercase().as_str() {
        "true" => "preemptible",
        "false" => "on-demand",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_type_and_zone() {
        assert_eq!(
            last_of_four("projects/123456789/machineTypes/e2-standard-4"),
            "e2-standard-4"
        );
        assert_eq!(last_of_four("e2-standard-4"), "");
        assert_eq!(
            zone_and_region("projects/123456789/zones/europe-west1-b"),
            ("europe-west1-b".to_owned(), "europe-west1".to_owned())
        );
        assert_eq!(zone_and_region(""), (String::new(), String::new()));
    }

    #[test]
    fn preemptible_maps_to_life_cycle() {
        assert_eq!(life_cycle("TRUE"), "preemptible");
        assert_eq!(life_cycle("FALSE\n"), "on-demand");
        assert_eq!(life_cycle(""), "");
    }
}
