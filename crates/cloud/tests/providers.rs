//! Each provider's metadata service played by a local server: the right requests (headers,
//! tokens, paths) go out and the right `node_cloud_info` labels come back.

#![allow(clippy::unwrap_used)]

#[path = "support/mock.rs"]
mod mock;

use std::collections::HashMap;
use std::time::Duration;

use mock::{MockServer, Reply, Seen, attempts, config, lookup, response};
use sonde_cloud::{CloudInfo, Provider, spawn};

const TIMEOUT: Duration = Duration::from_secs(5);
const AWS_TOKEN: &str = "AQAEAtoken-xyz==";

fn aws_fields() -> HashMap<&'static str, String> {
    HashMap::from([
        ("instance-id", "i-0abc1234def567890".to_owned()),
        ("instance-type", "m5.large".to_owned()),
        ("instance-life-cycle", "spot".to_owned()),
        ("placement/region", "us-east-1".to_owned()),
        ("placement/availability-zone", "us-east-1a".to_owned()),
        ("placement/availability-zone-id", "use1-az4".to_owned()),
        ("local-ipv4", "10.0.1.23".to_owned()),
        // no public-ipv4: IMDS answers 404 for an instance without one
        (
            "identity-credentials/ec2/info",
            response("aws_ec2_info.json"),
        ),
    ])
}

/// IMDSv2 only: GETs without the session token are refused with 401, as on an instance with
/// `HttpTokens=required`.
fn aws_imdsv2(
    fields: HashMap<&'static str, String>,
    document: Option<String>,
) -> impl Fn(&Seen) -> Reply {
    move |r: &Seen| {
        if r.method == "PUT" && r.path == "/latest/api/token" {
            return match r.header("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(ttl) if ttl.parse::<u32>().is_ok() => Reply::Ok(AWS_TOKEN.to_owned()),
                _ => Reply::Status(400),
            };
        }
        if r.method != "GET" || r.header("x-aws-ec2-metadata-token") != Some(AWS_TOKEN) {
            return Reply::Status(401);
        }
        if r.path == "/latest/dynamic/instance-identity/document" {
            return document.clone().map_or(Reply::Status(404), Reply::Ok);
        }
        lookup(&fields, "/latest/meta-data/", &r.path)
    }
}

#[tokio::test]
async fn aws_imdsv2_token_then_fields() {
    let server = MockServer::start(aws_imdsv2(aws_fields(), None)).await;
    let handle = spawn(config("aws-nitro", &server, TIMEOUT));
    attempts(&handle, 1).await;

    assert_eq!(handle.provider(), Some(Provider::Aws));
    assert_eq!(handle.errors_total(), vec![("AWS".to_owned(), 0)]);
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "AWS".into(),
            account_id: "123456789012".into(),
            instance_id: "i-0abc1234def567890".into(),
            instance_type: "m5.large".into(),
            instance_life_cycle: "spot".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            availability_zone_id: "use1-az4".into(),
            local_ipv4: "10.0.1.23".into(),
            public_ipv4: String::new(),
        })
    );
    let seen = server.requests();
    assert_eq!(seen[0].method, "PUT", "the token comes first");
    assert!(seen[1..].iter().all(|r| r.method == "GET"));
    assert!(
        seen[1..]
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token") == Some(AWS_TOKEN)),
        "every GET carries the IMDSv2 token: {seen:?}"
    );
}

#[tokio::test]
async fn aws_account_from_identity_document_when_ec2_info_is_missing() {
    let mut fields = aws_fields();
    fields.remove("identity-credentials/ec2/info");
    let server = MockServer::start(aws_imdsv2(
        fields,
        Some(response("aws_identity_document.json")),
    ))
    .await;
    let handle = spawn(config("aws-xen", &server, TIMEOUT));
    attempts(&handle, 1).await;
    let info = handle.current().unwrap();
    assert_eq!(info.account_id, "123456789012");
    assert_eq!(info.instance_id, "i-0abc1234def567890");
}

#[tokio::test]
async fn aws_token_refused_is_an_error_and_no_tokenless_get_is_tried() {
    let server = MockServer::start(|r: &Seen| {
        if r.method == "PUT" {
            Reply::Status(403)
        } else {
            Reply::Ok("i-should-not-be-read".into())
        }
    })
    .await;
    let handle = spawn(config("aws-nitro", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("AWS".to_owned(), 1)]);
    assert!(
        server.requests().iter().all(|r| r.method == "PUT"),
        "IMDSv1 never used"
    );
}

#[tokio::test]
async fn gcp_with_metadata_flavor() {
    let fields = HashMap::from([
        ("project/project-id", "my-project-123".to_owned()),
        ("instance/id", "4520031799277581759".to_owned()),
        ("instance/network-interfaces/0/ip", "10.128.0.2".to_owned()),
        (
            "instance/network-interfaces/0/access-configs/0/external-ip",
            "203.0.113.5".to_owned(),
        ),
        ("instance/scheduling/preemptible", "TRUE".to_owned()),
        (
            "instance/machine-type",
            "projects/123456789012/machineTypes/e2-standard-4".to_owned(),
        ),
        (
            "instance/zone",
            "projects/123456789012/zones/europe-west1-b".to_owned(),
        ),
    ]);
    let server = MockServer::start(move |r: &Seen| {
        if r.header("metadata-flavor") != Some("Google") {
            return Reply::Status(403);
        }
        lookup(&fields, "/computeMetadata/v1/", &r.path)
    })
    .await;
    let handle = spawn(config("gcp", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "GCP".into(),
            account_id: "my-project-123".into(),
            instance_id: "4520031799277581759".into(),
            instance_type: "e2-standard-4".into(),
            instance_life_cycle: "preemptible".into(),
            region: "europe-west1".into(),
            availability_zone: "europe-west1-b".into(),
            local_ipv4: "10.128.0.2".into(),
            public_ipv4: "203.0.113.5".into(),
            ..CloudInfo::default()
        })
    );
    assert_eq!(handle.errors_total(), vec![("GCP".to_owned(), 0)]);
}

#[tokio::test]
async fn azure_imds_json() {
    let server = MockServer::start(|r: &Seen| {
        let query_ok =
            r.query.contains("api-version=2021-05-01") && r.query.contains("format=json");
        match (r.path.as_str(), r.header("metadata")) {
            ("/metadata/instance", Some(v)) if v.eq_ignore_ascii_case("true") && query_ok => {
                Reply::Ok(response("azure_instance.json"))
            }
            ("/metadata/instance", _) => Reply::Status(400),
            _ => Reply::Status(404),
        }
    })
    .await;
    let handle = spawn(config("azure", &server, TIMEOUT));
    attempts(&handle, 1).await;
    let info = handle.current().unwrap();
    assert_eq!(info.provider, "Azure");
    assert_eq!(info.account_id, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    assert_eq!(info.instance_id, "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
    assert_eq!(info.instance_type, "Standard_A3");
    assert_eq!(info.region, "westus");
    assert_eq!(
        info.availability_zone, "1",
        "raw zone: the Coroot server prefixes the region"
    );
    assert_eq!(info.local_ipv4, "10.144.133.132");
    assert_eq!(info.public_ipv4, "203.0.113.7");
}

#[tokio::test]
async fn hetzner_yaml() {
    let server = MockServer::start(|r: &Seen| match r.path.as_str() {
        "/hetzner/v1/metadata" => Reply::Ok(response("hetzner_metadata.yaml")),
        _ => Reply::Status(404),
    })
    .await;
    let handle = spawn(config("hetzner", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "Hetzner".into(),
            instance_id: "42424242".into(),
            region: "eu-central".into(),
            availability_zone: "fsn1-dc14".into(),
            public_ipv4: "203.0.113.10".into(),
            ..CloudInfo::default()
        })
    );
}

#[tokio::test]
async fn digitalocean_region_is_the_zone() {
    let fields = HashMap::from([
        ("id", "123456789".to_owned()),
        ("region", "ams3".to_owned()),
    ]);
    let server = MockServer::start(move |r: &Seen| lookup(&fields, "/metadata/v1/", &r.path)).await;
    let handle = spawn(config("digitalocean", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "DigitalOcean".into(),
            instance_id: "123456789".into(),
            region: "ams3".into(),
            availability_zone: "ams3".into(),
            ..CloudInfo::default()
        })
    );
}

#[tokio::test]
async fn alibaba_fields() {
    let fields = HashMap::from([
        ("instance-id", "i-bp67acfmxazb4ph****".to_owned()),
        ("region-id", "cn-hangzhou".to_owned()),
        ("zone-id", "cn-hangzhou-i".to_owned()),
        ("owner-account-id", "1609****".to_owned()),
        ("instance/instance-type", "ecs.g7.large".to_owned()),
        ("private-ipv4", "192.168.0.10".to_owned()),
    ]);
    let server =
        MockServer::start(move |r: &Seen| lookup(&fields, "/latest/meta-data/", &r.path)).await;
    let handle = spawn(config("alibaba", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "Alibaba".into(),
            account_id: "1609****".into(),
            instance_id: "i-bp67acfmxazb4ph****".into(),
            instance_type: "ecs.g7.large".into(),
            region: "cn-hangzhou".into(),
            availability_zone: "cn-hangzhou-i".into(),
            local_ipv4: "192.168.0.10".into(),
            ..CloudInfo::default()
        })
    );
}

#[tokio::test]
async fn scaleway_conf() {
    let server = MockServer::start(|r: &Seen| match r.path.as_str() {
        "/conf" => Reply::Ok(response("scaleway_conf.txt")),
        _ => Reply::Status(404),
    })
    .await;
    let handle = spawn(config("scaleway", &server, TIMEOUT));
    attempts(&handle, 1).await;
    let info = handle.current().unwrap();
    assert_eq!(info.provider, "Scaleway");
    assert_eq!(info.instance_id, "6cfd4a29-bb1c-4f8e-9b8e-6a1a2b3c4d5e");
    assert_eq!(
        (info.region.as_str(), info.availability_zone.as_str()),
        ("fr-par", "fr-par-1")
    );
    assert_eq!(info.instance_type, "PRO2-S");
}

#[tokio::test]
async fn oracle_needs_bearer_oracle() {
    let server = MockServer::start(
        |r: &Seen| match (r.path.as_str(), r.header("authorization")) {
            ("/opc/v2/instance/", Some("Bearer Oracle")) => {
                Reply::Ok(response("oracle_instance.json"))
            }
            ("/opc/v2/instance/", _) => Reply::Status(401),
            _ => Reply::Status(404),
        },
    )
    .await;
    let handle = spawn(config("oracle", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "Oracle".into(),
            instance_id: "ocid1.instance.oc1.eu-frankfurt-1.antheljexampleuniqueid".into(),
            region: "eu-frankfurt-1".into(),
            availability_zone: "eu-frankfurt-1-ad-2".into(),
            instance_type: "VM.Standard.E4.Flex".into(),
            ..CloudInfo::default()
        })
    );
}

#[tokio::test]
async fn ibm_token_then_instance() {
    let server = MockServer::start(|r: &Seen| {
        let versioned = r.query.starts_with("version=");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/instance_identity/v1/token")
                if versioned && r.header("metadata-flavor") == Some("ibm") =>
            {
                Reply::Ok(response("ibm_token.json"))
            }
            ("GET", "/metadata/v1/instance")
                if versioned
                    && r.header("authorization") == Some("Bearer eyJhbGciOiJSUzI1NiJ9.example") =>
            {
                Reply::Ok(response("ibm_instance.json"))
            }
            _ => Reply::Status(401),
        }
    })
    .await;
    let handle = spawn(config("ibm", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "IBM".into(),
            instance_id: "0717_e21b7391-2ca2-4ab5-84a8-b92157a633b0".into(),
            region: "us-south".into(),
            availability_zone: "us-south-1".into(),
            instance_type: "bx2-2x8".into(),
            ..CloudInfo::default()
        })
    );
    assert_eq!(server.count(), 2);
}
