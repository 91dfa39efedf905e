//! Failure modes: a service slower than the timeout, error statuses, garbage, oversized
//! answers, refused connections; machines that must not be queried at all; last-good labels
//! kept across failures; overrides.

#![allow(clippy::unwrap_used)]

#[path = "support/mock.rs"]
mod mock;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mock::{MockServer, Reply, Seen, attempts, config, lookup, response};
use sonde_cloud::{CloudInfo, Endpoints, MAX_BODY_BYTES, Overrides, Provider, spawn};

const SHORT: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn slow_service_times_out_while_scrapes_are_answered() {
    let server = MockServer::start(|_: &Seen| Reply::Hang).await;
    let handle = spawn(config("aws-nitro", &server, SHORT));

    // The fetch is in flight (the server holds the token request and will never answer), yet
    // spawn() has returned and the scrape-side reads answer at once with "nothing yet".
    server.wait_for_requests(1).await;
    assert_eq!(handle.attempts(), 0, "the fetch is still pending");
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("AWS".to_owned(), 0)]);

    attempts(&handle, 1).await;
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("AWS".to_owned(), 1)]);
}

#[tokio::test]
async fn error_statuses_are_counted() {
    for (dmi, provider, status) in [
        ("aws-nitro", "AWS", 404),
        ("gcp", "GCP", 500),
        ("azure", "Azure", 404),
        ("hetzner", "Hetzner", 500),
        ("digitalocean", "DigitalOcean", 503),
        ("alibaba", "Alibaba", 404),
        ("scaleway", "Scaleway", 500),
        ("oracle", "Oracle", 404),
        ("ibm", "IBM", 500),
    ] {
        let server = MockServer::start(move |_: &Seen| Reply::Status(status)).await;
        let handle = spawn(config(dmi, &server, TIMEOUT));
        attempts(&handle, 1).await;
        assert_eq!(handle.current(), None, "{dmi} answering {status}");
        assert_eq!(
            handle.errors_total(),
            vec![(provider.to_owned(), 1)],
            "{dmi}"
        );
        assert!(server.count() >= 1, "{dmi}: the service was queried");
    }
}

#[tokio::test]
async fn a_failing_optional_field_fails_the_fetch_but_404_does_not() {
    // GCP without an external IP answers 404 for it: labels come with public_ipv4 empty.
    let fields = HashMap::from([("instance/id", "1".to_owned())]);
    let server =
        MockServer::start(move |r: &Seen| lookup(&fields, "/computeMetadata/v1/", &r.path)).await;
    let handle = spawn(config("gcp", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(handle.current().unwrap().instance_id, "1");
    assert_eq!(handle.errors_total(), vec![("GCP".to_owned(), 0)]);

    // The same field answering 500 is a failure, not an empty label.
    let server = MockServer::start(|r: &Seen| match r.path.as_str() {
        "/computeMetadata/v1/instance/id" => Reply::Ok("1".into()),
        _ => Reply::Status(500),
    })
    .await;
    let handle = spawn(config("gcp", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("GCP".to_owned(), 1)]);
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_errors() {
    let server =
        MockServer::start(|_: &Seen| Reply::Ok("<html>captive portal</html>".into())).await;
    let handle = spawn(config("azure", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("Azure".to_owned(), 1)]);

    let big = format!("instance-id: 1\npadding: {}\n", "x".repeat(MAX_BODY_BYTES));
    let server = MockServer::start(move |_: &Seen| Reply::Ok(big.clone())).await;
    let handle = spawn(config("hetzner", &server, TIMEOUT));
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        None,
        "an answer over the bound is refused"
    );
    assert_eq!(handle.errors_total(), vec![("Hetzner".to_owned(), 1)]);
}

#[tokio::test]
async fn refused_connection_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut cfg = sonde_cloud::CloudConfig {
        host_root: mock::dmi_root("digitalocean"),
        timeout: TIMEOUT,
        ..Default::default()
    };
    cfg.endpoints = Endpoints::all(&base);
    let handle = spawn(cfg);
    attempts(&handle, 1).await;
    assert_eq!(handle.current(), None);
    assert_eq!(handle.errors_total(), vec![("DigitalOcean".to_owned(), 1)]);
}

#[tokio::test]
async fn unrecognised_machines_send_no_request() {
    for dmi in ["kvm", "vmware", "baremetal", "xen-not-ec2", "no-dmi"] {
        let server = MockServer::start(|_: &Seen| Reply::Ok("x".into())).await;
        let handle = spawn(config(dmi, &server, TIMEOUT));
        let detected = tokio::time::timeout(Duration::from_secs(20), handle.wait_detected())
            .await
            .unwrap();
        assert_eq!(detected, None, "{dmi}");
        // Give a wrongly started fetch the time to reach the server before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(server.count(), 0, "{dmi}: no metadata request");
        assert_eq!(handle.attempts(), 0);
        assert_eq!(handle.current(), None);
        assert!(handle.errors_total().is_empty());
    }
}

#[tokio::test]
async fn overrides_alone_on_an_unrecognised_machine() {
    let server = MockServer::start(|_: &Seen| Reply::Ok("x".into())).await;
    let mut cfg = config("kvm", &server, TIMEOUT);
    cfg.overrides = Overrides {
        provider: Some("OpenStack".into()),
        region: Some("dc1".into()),
        availability_zone: Some("dc1-rack3".into()),
        ..Overrides::default()
    };
    let handle = spawn(cfg);
    handle.wait_detected().await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "OpenStack".into(),
            region: "dc1".into(),
            availability_zone: "dc1-rack3".into(),
            ..CloudInfo::default()
        })
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn overrides_fill_in_and_replace_fetched_labels() {
    let fields = HashMap::from([("id", "77".to_owned()), ("region", "fra1".to_owned())]);
    let server = MockServer::start(move |r: &Seen| lookup(&fields, "/metadata/v1/", &r.path)).await;
    let mut cfg = config("digitalocean", &server, TIMEOUT);
    cfg.overrides = Overrides {
        availability_zone: Some("fra1-b".into()),
        instance_type: Some("s-2vcpu-4gb".into()),
        ..Overrides::default()
    };
    let handle = spawn(cfg);
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        Some(CloudInfo {
            provider: "DigitalOcean".into(),
            instance_id: "77".into(),
            region: "fra1".into(),
            availability_zone: "fra1-b".into(),
            instance_type: "s-2vcpu-4gb".into(),
            ..CloudInfo::default()
        })
    );
}

#[tokio::test]
async fn overrides_are_shown_while_the_service_has_not_answered() {
    let server = MockServer::start(|_: &Seen| Reply::Hang).await;
    let mut cfg = config("gcp", &server, SHORT);
    cfg.overrides.instance_life_cycle = Some("spot".into());
    let handle = spawn(cfg);
    server.wait_for_requests(1).await;
    let want = Some(CloudInfo {
        provider: "GCP".into(),
        instance_life_cycle: "spot".into(),
        ..CloudInfo::default()
    });
    assert_eq!(handle.current(), want);
    attempts(&handle, 1).await;
    assert_eq!(
        handle.current(),
        want,
        "still the overrides after the timeout"
    );
    assert_eq!(handle.errors_total(), vec![("GCP".to_owned(), 1)]);
}

#[tokio::test]
async fn refresh_keeps_last_good_on_failure_and_picks_up_changes() {
    let broken = Arc::new(AtomicBool::new(false));
    let preemptible = Arc::new(AtomicBool::new(false));
    let server = {
        let (broken, preemptible) = (broken.clone(), preemptible.clone());
        MockServer::start(move |r: &Seen| {
            if broken.load(Ordering::SeqCst) {
                return Reply::Status(500);
            }
            match r
                .path
                .strip_prefix("/computeMetadata/v1/")
                .unwrap_or_default()
            {
                "instance/id" => Reply::Ok("42".into()),
                "instance/zone" => Reply::Ok("projects/1/zones/us-central1-a".into()),
                "instance/scheduling/preemptible" => Reply::Ok(
                    if preemptible.load(Ordering::SeqCst) {
                        "TRUE"
                    } else {
                        "FALSE"
                    }
                    .into(),
                ),
                _ => Reply::Status(404),
            }
        })
        .await
    };
    let mut cfg = config("gcp", &server, TIMEOUT);
    cfg.refresh_interval = Duration::from_millis(20);
    let handle = spawn(cfg);
    attempts(&handle, 1).await;
    let good = handle.current().unwrap();
    assert_eq!(good.instance_life_cycle, "on-demand");
    assert_eq!(good.availability_zone, "us-central1-a");

    broken.store(true, Ordering::SeqCst);
    let n = handle.attempts();
    attempts(&handle, n + 3).await;
    let errors = handle.errors_total()[0].1;
    assert!(errors >= 2, "failed refreshes are counted: {errors}");
    assert_eq!(
        handle.current(),
        Some(good.clone()),
        "labels kept across failures"
    );

    preemptible.store(true, Ordering::SeqCst);
    broken.store(false, Ordering::SeqCst);
    let n = handle.attempts();
    attempts(&handle, n + 2).await;
    let now = handle.current().unwrap();
    assert_eq!(
        now.instance_life_cycle, "preemptible",
        "a changed life cycle is picked up"
    );
    assert_eq!(now.instance_id, good.instance_id);
    assert_eq!(handle.provider(), Some(Provider::Gcp));
}

#[tokio::test]
async fn aws_fixture_response_formats_parse_end_to_end() {
    // The recorded identity-credentials answer, served as-is, yields the account id.
    let server = MockServer::start(|r: &Seen| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/latest/api/token") => Reply::Ok("t".into()),
        ("GET", "/latest/meta-data/instance-id") => Reply::Ok("i-1\n".into()),
        ("GET", "/latest/meta-data/identity-credentials/ec2/info") => {
            Reply::Ok(response("aws_ec2_info.json"))
        }
        _ => Reply::Status(404),
    })
    .await;
    let handle = spawn(config("aws-metal", &server, TIMEOUT));
    attempts(&handle, 1).await;
    let info = handle.current().unwrap();
    assert_eq!(
        (info.instance_id.as_str(), info.account_id.as_str()),
        ("i-1", "123456789012")
    );
}
