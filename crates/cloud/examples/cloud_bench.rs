//! Rough costs for docs/cloud.md: `spawn()` return time, `current()` per call (the scrape
//! path), and one full fetch (DigitalOcean, two requests) against a local responder.
//! Run: `cargo run --release -p sonde-cloud --example cloud_bench`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sonde_cloud::{CloudConfig, Endpoints, Overrides, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // A minimal HTTP/1 responder: answers every request with a short body and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nams3",
                    )
                    .await;
            });
        }
    });

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/dmi/digitalocean");
    let rounds = 200u32;
    let mut spawn_total = Duration::ZERO;
    let mut fetch_total = Duration::ZERO;
    let mut handles = Vec::new();
    for _ in 0..rounds {
        let config = CloudConfig {
            host_root: root.clone(),
            overrides: Overrides::default(),
            timeout: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(3600),
            endpoints: Endpoints::all(&base),
        };
        let start = Instant::now();
        let handle = spawn(config);
        spawn_total += start.elapsed();
        handle.wait_for_attempts(1).await;
        fetch_total += start.elapsed();
        assert!(
            handle.current().is_some(),
            "fetch failed: {:?}",
            handle.errors_total()
        );
        handles.push(handle);
    }
    let handle = &handles[0];
    let reads = 1_000_000u32;
    let start = Instant::now();
    let mut n = 0usize;
    for _ in 0..reads {
        n += handle.current().map_or(0, |i| i.region.len());
    }
    let per_read = start.elapsed() / reads;
    println!(
        "spawn() return: {:?} avg over {rounds}",
        spawn_total / rounds
    );
    println!(
        "spawn -> first info (DMI read + 2 requests): {:?} avg over {rounds}",
        fetch_total / rounds
    );
    println!("current(): {per_read:?} per call (checksum {n})");
    Ok(())
}
