//! A fake runtime: an HTTP/1.1 server on a unix socket in a temp dir, for unit tests.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// What the fake server does with one request (given its path).
pub(crate) enum Reply {
    /// A full HTTP response: status, extra headers, body.
    Http(u16, Vec<(String, String)>, String),
    /// Raw bytes written as-is, then the connection is closed.
    Raw(Vec<u8>),
    /// Read the request and never answer (keeps the connection open).
    Hang,
}

pub(crate) struct FakeServer {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// Request paths seen, in order.
    pub paths: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("runtime.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let seen = paths.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(path.clone());
                    match handler(&path) {
                        Reply::Http(status, headers, body) => {
                            let mut resp = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                                body.len()
                            );
                            for (k, v) in headers {
                                resp.push_str(&format!("{k}: {v}\r\n"));
                            }
                            resp.push_str("\r\n");
                            resp.push_str(&body);
                            let _ = stream.write_all(resp.as_bytes()).await;
                        }
                        Reply::Raw(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                        }
                        Reply::Hang => {
                            let _ = stream.read(&mut chunk).await;
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        FakeServer {
            _dir: dir,
            socket,
            paths,
            task,
        }
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// Reads a file of testdata/.
pub(crate) fn testdata(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .unwrap()
}

/// Runs `fut` and fails the test if it has not finished after 30 s (a hang, not a timing check).
pub(crate) async fn no_hang<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), fut)
        .await
        .expect("call hung: timeout not enforced")
}
