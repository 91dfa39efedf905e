//! `node_cloud_info` end to end: the real agent, a DMI fixture of the cloud crate as its DMI
//! root, and a local HTTP server on 127.0.0.1 playing the provider's metadata service (IMDSv2
//! with token-less GETs refused, GCP, Azure, a slow one, failing ones). Unrecognised machines
//! must send no request at all. No test ever reaches a real metadata address: every agent started
//! here with a DMI fixture also gets `--cloud-metadata-base-url` pointing at a mock.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use sonde_integration_tests::agent::sonde_binary;
use sonde_integration_tests::http_mock::{MockServer, Route};
use sonde_integration_tests::{Agent, Scrape, wait_for};

const INFO: &str = "node_cloud_info";
const ERRORS: &str = "sonde_cloud_metadata_errors_total";
/// The ten labels of node_cloud_info (the node's own labels may be added to every series).
const CLOUD_LABELS: [&str; 10] = [
    "provider",
    "account_id",
    "instance_id",
    "instance_type",
    "instance_life_cycle",
    "region",
    "availability_zone",
    "availability_zone_id",
    "local_ipv4",
    "public_ipv4",
];
/// Environment the agent reads as flags; unset so the test's environment cannot change labels
/// or, worse, the metadata address.
const AGENT_ENV: [&str; 10] = [
    "PROVIDER",
    "REGION",
    "AVAILABILITY_ZONE",
    "INSTANCE_TYPE",
    "INSTANCE_LIFE_CYCLE",
    "SONDE_CLOUD_METADATA_BASE_URL",
    "SONDE_CLOUD_DMI_ROOT",
    "SONDE_CLOUD_METADATA_TIMEOUT",
    "SONDE_CLOUD_METADATA_REFRESH",
    "LOG_LEVEL",
];
const NOT_RECOGNISED_LOG: &str = "No cloud provider recognised from DMI";

/// A DMI fixture of the cloud crate: `<dir>/sys/class/dmi/id/*`.
fn dmi_fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/cloud/testdata/dmi")
        .join(name);
    assert!(dir.is_dir(), "missing DMI fixture {}", dir.display());
    dir.to_str().unwrap().to_owned()
}

/// The agent with DMI from `fixture` and every metadata service at `mock` (never the real
/// addresses), a 2 s fetch timeout, an hourly refresh, plus `extra` flags.
fn start_agent(fixture: &str, mock: &MockServer, extra: &[&str]) -> Agent {
    let dmi = dmi_fixture(fixture);
    let mut args = vec![
        "--log-level",
        "info",
        "--cloud-dmi-root",
        &dmi,
        "--cloud-metadata-base-url",
        &mock.base,
        "--cloud-metadata-timeout",
        "2s",
        "--cloud-metadata-refresh",
        "1h",
    ];
    args.extend_from_slice(extra);
    let mut launcher: Vec<OsString> = vec!["env".into()];
    for var in AGENT_ENV {
        launcher.push("-u".into());
        launcher.push(var.into());
    }
    launcher.push(sonde_binary().into_os_string());
    Agent::start_via(&launcher, &args)
}

/// The node_cloud_info labels of the single series, or None when there is none.
fn cloud_info(s: &Scrape) -> Option<BTreeMap<String, String>> {
    let found: Vec<_> = s.find(INFO, &[]).collect();
    assert!(
        found.len() <= 1,
        "several node_cloud_info series: {found:?}"
    );
    let sample = found.first()?;
    assert_eq!(sample.value, 1.0);
    Some(
        CLOUD_LABELS
            .iter()
            .map(|k| {
                let v = sample
                    .labels
                    .get(*k)
                    .unwrap_or_else(|| panic!("node_cloud_info without label {k}: {sample:?}"));
                ((*k).to_owned(), v.clone())
            })
            .collect(),
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = CLOUD_LABELS
        .iter()
        .map(|k| ((*k).to_owned(), String::new()))
        .collect();
    for (k, v) in pairs {
        assert!(out.contains_key(*k), "not a node_cloud_info label: {k}");
        out.insert((*k).to_owned(), (*v).to_owned());
    }
    out
}

const AWS_TOKEN: &str = "AQAEAFake-imds-token==";

/// IMDSv2 only: GETs without the session token are refused with 401, as on an instance with
/// `HttpTokens=required`.
fn aws_routes() -> Vec<Route> {
    let fields = [
        ("instance-id", "i-0123456789abcdef0"),
        ("instance-type", "m5.large"),
        ("instance-life-cycle", "spot"),
        ("placement/region", "eu-central-1"),
        ("placement/availability-zone", "eu-central-1b"),
        ("placement/availability-zone-id", "euc1-az3"),
        ("local-ipv4", "10.1.2.3"),
        ("public-ipv4", "198.51.100.7"),
        (
            "identity-credentials/ec2/info",
            r#"{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","AccountId":"210987654321"}"#,
        ),
    ];
    let mut routes = vec![Route::put("/latest/api/token", AWS_TOKEN)];
    for (path, value) in fields {
        routes.push(
            Route::get(&format!("/latest/meta-data/{path}"), value)
                .require_header("X-aws-ec2-metadata-token", AWS_TOKEN),
        );
    }
    routes
}

fn aws_expected() -> BTreeMap<String, String> {
    labels(&[
        ("provider", "AWS"),
        ("account_id", "210987654321"),
        ("instance_id", "i-0123456789abcdef0"),
        ("instance_type", "m5.large"),
        ("instance_life_cycle", "spot"),
        ("region", "eu-central-1"),
        ("availability_zone", "eu-central-1b"),
        ("availability_zone_id", "euc1-az3"),
        ("local_ipv4", "10.1.2.3"),
        ("public_ipv4", "198.51.100.7"),
    ])
}

/// Requests without `Metadata-Flavor: Google` are refused (403), as GCE does.
fn gcp_routes() -> Vec<Route> {
    [
        ("instance/id", "4520031799277581759"),
        ("project/project-id", "sonde-test-project"),
        ("instance/network-interfaces/0/ip", "10.132.0.5"),
        (
            "instance/network-interfaces/0/access-configs/0/external-ip",
            "203.0.113.21",
        ),
        ("instance/scheduling/preemptible", "TRUE"),
        (
            "instance/machine-type",
            "projects/123456789/machineTypes/e2-standard-4",
        ),
        ("instance/zone", "projects/123456789/zones/europe-west1-b"),
    ]
    .into_iter()
    .map(|(path, value)| {
        Route::get(&format!("/computeMetadata/v1/{path}"), value)
            .require_header("Metadata-Flavor", "Google")
            .refuse_with(403)
    })
    .collect()
}

const AZURE_DOC: &str = r#"{
  "compute": {
    "location": "northeurope",
    "vmId": "5c3a4f5e-1111-2222-3333-444455556666",
    "vmSize": "Standard_D2s_v5",
    "zone": "2",
    "subscriptionId": "0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff",
    "name": "sonde-test-vm"
  },
  "network": {
    "interface": [
      {"ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": "20.50.1.2"}],
                "subnet": [{"address": "10.0.0.0", "prefix": "24"}]}}
    ]
  }
}"#;

fn azure_routes(doc: &str) -> Vec<Route> {
    vec![
        Route::get("/metadata/instance", doc)
            .require_header("Metadata", "true")
            .refuse_with(400),
    ]
}

/// Scrapes until node_cloud_info shows `instance_id`, then returns the scrape.
fn scrape_until_instance(agent: &Agent, instance_id: &str) -> Scrape {
    agent.scrape_until(
        &format!("node_cloud_info with instance_id {instance_id}"),
        Duration::from_secs(20),
        |s| cloud_info(s).is_some_and(|l| l["instance_id"] == instance_id),
    )
}

#[test]
fn aws_imdsv2_only_service_gives_every_label() {
    let mock = MockServer::start(aws_routes());
    let agent = start_agent("aws-nitro", &mock, &[]);
    let s = scrape_until_instance(&agent, "i-0123456789abcdef0");
    assert_eq!(cloud_info(&s).unwrap(), aws_expected());
    assert_eq!(s.value(ERRORS, &[("provider", "AWS")]), Some(0.0));

    let seen = mock.requests();
    assert_eq!(seen[0].method, "PUT", "the token comes first: {seen:?}");
    assert_eq!(seen[0].path, "/latest/api/token");
    let ttl: u32 = seen[0]
        .header("X-aws-ec2-metadata-token-ttl-seconds")
        .expect("token request without a TTL header")
        .parse()
        .unwrap();
    assert!((1..=21600).contains(&ttl), "TTL {ttl}");
    // Every metadata GET carried the token: the service refused none (IMDSv1 never tried).
    for r in &seen[1..] {
        assert_eq!(r.method, "GET", "{r:?}");
        assert_eq!(
            r.header("X-aws-ec2-metadata-token"),
            Some(AWS_TOKEN),
            "{r:?}"
        );
        assert_ne!(r.status, 401, "token-less request {r:?}");
    }
    assert!(seen.len() >= 9, "{} requests", seen.len());
}

#[test]
fn gcp_service_gives_its_labels() {
    let mock = MockServer::start(gcp_routes());
    let agent = start_agent("gcp", &mock, &[]);
    let s = scrape_until_instance(&agent, "4520031799277581759");
    assert_eq!(
        cloud_info(&s).unwrap(),
        labels(&[
            ("provider", "GCP"),
            ("account_id", "sonde-test-project"),
            ("instance_id", "4520031799277581759"),
            ("instance_type", "e2-standard-4"),
            ("instance_life_cycle", "preemptible"),
            ("region", "europe-west1"),
            ("availability_zone", "europe-west1-b"),
            ("local_ipv4", "10.132.0.5"),
            ("public_ipv4", "203.0.113.21"),
        ])
    );
    assert_eq!(s.value(ERRORS, &[("provider", "GCP")]), Some(0.0));
    for r in mock.requests() {
        assert_eq!(r.status, 200, "refused or unknown request {r:?}");
        assert_eq!(r.header("Metadata-Flavor"), Some("Google"));
    }
}

#[test]
fn azure_service_gives_its_labels() {
    let mock = MockServer::start(azure_routes(AZURE_DOC));
    let agent = start_agent("azure", &mock, &[]);
    let s = scrape_until_instance(&agent, "5c3a4f5e-1111-2222-3333-444455556666");
    assert_eq!(
        cloud_info(&s).unwrap(),
        labels(&[
            ("provider", "Azure"),
            ("account_id", "0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff"),
            ("instance_id", "5c3a4f5e-1111-2222-3333-444455556666"),
            ("instance_type", "Standard_D2s_v5"),
            ("region", "northeurope"),
            ("availability_zone", "2"),
            ("local_ipv4", "10.0.0.4"),
            ("public_ipv4", "20.50.1.2"),
        ])
    );
    assert_eq!(s.value(ERRORS, &[("provider", "Azure")]), Some(0.0));
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].status, 200);
    let query: Vec<&str> = seen[0].query.split('&').collect();
    assert!(
        query.contains(&"api-version=2021-05-01") && query.contains(&"format=json"),
        "{query:?}"
    );
}

#[test]
fn slow_service_does_not_delay_the_first_scrape() {
    // Every answer is held 10 s; the agent gives up after 2 s.
    let mock = MockServer::start_with_delay(aws_routes(), Duration::from_secs(10));
    let agent = start_agent("aws-nitro", &mock, &[]);
    mock.wait_for_requests(1, Duration::from_secs(20));
    let first = agent.scrape();
    // The scrape is back while the mock still holds the (token) request...
    assert_eq!(mock.answered(), 0, "the mock answered already");
    assert!(mock.in_flight() >= 1, "no request held by the mock");
    assert_eq!(mock.count(), 1, "{:?}", mock.requests());
    // ...and before the fetch timed out: the provider is known, nothing failed yet.
    assert!(cloud_info(&first).is_none(), "{}", first.text);
    assert_eq!(
        first.value(ERRORS, &[("provider", "AWS")]),
        Some(0.0),
        "{}",
        first.text
    );
    // The timeout is counted as an error; still no labels.
    let s = agent.scrape_until("the timeout to count", Duration::from_secs(20), |s| {
        s.value(ERRORS, &[("provider", "AWS")]).unwrap_or(0.0) >= 1.0
    });
    assert!(cloud_info(&s).is_none(), "{}", s.text);
    assert!(
        agent.log_text().contains("did not answer within"),
        "{}",
        agent.log_text()
    );
}

/// The service answers `routes`, one main endpoint failing: no labels, the error counted.
fn failing_service(fixture: &str, provider: &str, routes: Vec<Route>) -> MockServer {
    let mock = MockServer::start(routes);
    let agent = start_agent(fixture, &mock, &[]);
    let s = agent.scrape_until(
        &format!("a {provider} metadata error"),
        Duration::from_secs(20),
        |s| s.value(ERRORS, &[("provider", provider)]).unwrap_or(0.0) >= 1.0,
    );
    assert!(cloud_info(&s).is_none(), "{}", s.text);
    // One more scrape later: still nothing (a failure is retried in 30 s, not at once).
    std::thread::sleep(Duration::from_millis(500));
    let again = agent.scrape();
    assert!(cloud_info(&again).is_none(), "{}", again.text);
    assert!(agent.log_text().contains("Cloud metadata fetch failed"));
    mock
}

#[test]
fn aws_token_500_gives_no_labels() {
    let mut routes = aws_routes();
    routes[0] = Route::put("/latest/api/token", "").status(500);
    let mock = failing_service("aws-nitro", "AWS", routes);
    // Without a token no metadata GET is tried (IMDSv1 is never a fallback).
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].method.as_str(), seen[0].status), ("PUT", 500));
}

#[test]
fn aws_instance_id_404_gives_no_labels() {
    let routes = aws_routes()
        .into_iter()
        .filter(|r| r.path() != "/latest/meta-data/instance-id")
        .collect();
    let mock = failing_service("aws-nitro", "AWS", routes);
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.path == "/latest/meta-data/instance-id" && r.status == 404)
    );
}

#[test]
fn gcp_instance_id_404_gives_no_labels() {
    let routes = gcp_routes()
        .into_iter()
        .filter(|r| r.path() != "/computeMetadata/v1/instance/id")
        .collect();
    let mock = failing_service("gcp", "GCP", routes);
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.path == "/computeMetadata/v1/instance/id" && r.status == 404)
    );
}

#[test]
fn azure_500_gives_no_labels() {
    let routes = vec![Route::get("/metadata/instance", AZURE_DOC).status(500)];
    let mock = failing_service("azure", "Azure", routes);
    assert_eq!(mock.count(), 1);
}

/// Every provider's routes at once: if an unrecognised machine were misdetected, its fetch
/// would succeed and show.
fn every_provider_routes() -> Vec<Route> {
    let mut routes = aws_routes();
    routes.extend(gcp_routes());
    routes.extend(azure_routes(AZURE_DOC));
    routes
}

#[test]
fn unrecognised_machines_send_no_request() {
    for fixture in ["baremetal", "kvm", "vmware", "xen-not-ec2", "no-dmi"] {
        let mock = MockServer::start(every_provider_routes());
        let agent = start_agent(fixture, &mock, &[]);
        wait_for(
            &format!("{fixture}: the agent's detection log"),
            Duration::from_secs(20),
            || agent.log_text().contains(NOT_RECOGNISED_LOG).then_some(()),
        );
        let s = agent.scrape();
        assert!(cloud_info(&s).is_none(), "{fixture}: {}", s.text);
        assert!(!s.has(ERRORS, &[]), "{fixture}: {}", s.text);
        assert_eq!(mock.count(), 0, "{fixture}: {:?}", mock.requests());
    }
}

#[test]
fn overrides_alone_label_an_unrecognised_machine() {
    let mock = MockServer::start(every_provider_routes());
    let agent = start_agent(
        "baremetal",
        &mock,
        &[
            "--provider",
            "private",
            "--region",
            "r1",
            "--availability-zone",
            "z1",
        ],
    );
    wait_for("the agent's detection log", Duration::from_secs(20), || {
        agent.log_text().contains(NOT_RECOGNISED_LOG).then_some(())
    });
    let s = agent.scrape();
    assert_eq!(
        cloud_info(&s),
        Some(labels(&[
            ("provider", "private"),
            ("region", "r1"),
            ("availability_zone", "z1"),
        ])),
        "{}",
        s.text
    );
    assert!(!s.has(ERRORS, &[]), "{}", s.text);
    assert_eq!(mock.count(), 0, "{:?}", mock.requests());
}

#[test]
fn overrides_win_over_the_aws_service() {
    let mock = MockServer::start(aws_routes());
    // aws-xen: the older detection path (an `ec2` hypervisor uuid, no board vendor).
    let agent = start_agent("aws-xen", &mock, &["--region", "override-region-1"]);
    let s = scrape_until_instance(&agent, "i-0123456789abcdef0");
    let mut expected = aws_expected();
    expected.insert("region".into(), "override-region-1".into());
    assert_eq!(cloud_info(&s).unwrap(), expected);
    assert_eq!(s.value(ERRORS, &[("provider", "AWS")]), Some(0.0));
}
