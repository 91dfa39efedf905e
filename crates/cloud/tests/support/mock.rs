//! A metadata-service stand-in: a real HTTP/1 server on 127.0.0.1 at a random port that
//! records every request and answers through a test-supplied function.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sonde_cloud::{CloudConfig, CloudHandle, Endpoints, Overrides};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the server saw it; header names are lower-case.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How to answer.
pub enum Reply {
    Ok(String),
    Status(u16),
    /// Never answer (a service slower than any timeout).
    Hang,
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct MockServer {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl MockServer {
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let seen = seen.clone();
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            let handler = handler.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    answer(req, &seen, &*handler).await,
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self { base, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits (bounded) until the server has received at least `n` requests.
    pub async fn wait_for_requests(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(20), async {
            while self.count() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the mock never received the expected requests");
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
) -> Response<Full<Bytes>> {
    let record = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    };
    seen.lock().unwrap().push(record.clone());
    match handler(&record) {
        Reply::Ok(body) => Response::new(Full::new(Bytes::from(body))),
        Reply::Status(code) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"error")));
            *r.status_mut() = StatusCode::from_u16(code).unwrap();
            r
        }
        Reply::Hang => std::future::pending().await,
    }
}

/// A DMI fixture of the crate (`testdata/dmi/<name>`) as the host root.
pub fn dmi_root(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/dmi")
        .join(name)
}

/// A recorded-format response of the crate (`testdata/responses/<name>`).
pub fn response(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/responses")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// Every provider pointed at `server`, DMI from fixture `dmi`, an hourly refresh.
pub fn config(dmi: &str, server: &MockServer, timeout: Duration) -> CloudConfig {
    CloudConfig {
        host_root: dmi_root(dmi),
        overrides: Overrides::default(),
        timeout,
        refresh_interval: Duration::from_secs(3600),
        endpoints: Endpoints::all(&server.base),
    }
}

/// Waits (bounded) for `n` finished fetches.
pub async fn attempts(handle: &CloudHandle, n: u64) {
    tokio::time::timeout(Duration::from_secs(20), handle.wait_for_attempts(n))
        .await
        .expect("the metadata fetch never finished");
    assert!(handle.attempts() >= n, "task ended before {n} attempts");
}

/// `map` answers GETs of `prefix + key`, 404 otherwise.
pub fn lookup(map: &HashMap<&'static str, String>, prefix: &str, path: &str) -> Reply {
    match path.strip_prefix(prefix).and_then(|k| map.get(k)) {
        Some(v) => Reply::Ok(v.clone()),
        None => Reply::Status(404),
    }
}
