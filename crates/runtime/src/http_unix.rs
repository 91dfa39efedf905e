//! A minimal HTTP/1.1 GET over a unix socket, bounded in time and size.
//!
//! Used for CRI-O's inspect endpoint (bollard speaks only the Docker API). Every request opens its own connection: metadata
//! look-ups are rare (once per new container), so pooling would only keep sockets open.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use crate::error::{Error, truncate_message};

/// A response read in full.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// Aborts the connection driver when the request future is dropped (timeout), so a runtime
/// that never answers cannot keep a task and a socket alive behind us.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET path` on the unix socket `socket`; the whole exchange (connect, headers, body) is bounded
/// by `timeout`, and bodies larger than `max_body` bytes are refused.
pub(crate) async fn get(
    runtime: &'static str,
    socket: &Path,
    path: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, Error> {
    match tokio::time::timeout(timeout, get_unbounded(runtime, socket, path, max_body)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            runtime,
            socket: socket.to_owned(),
            timeout,
        }),
    }
}

async fn get_unbounded(
    runtime: &'static str,
    socket: &Path,
    path: &str,
    max_body: usize,
) -> Result<Response, Error> {
    let protocol = |e: Box<dyn std::error::Error + Send + Sync>| Error::Protocol {
        runtime,
        socket: socket.to_owned(),
        source: e,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| Error::Unavailable {
            runtime,
            socket: socket.to_owned(),
            source: Box::new(e),
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(Box::new(e)))?;
    // The connection future must be polled for the request to progress; it ends when the
    // socket closes. Errors surface through `send_request`, so its own result is not needed.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let req = Request::get(path)
        .header(HOST, "localhost")
        .header(ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| protocol(Box::new(e)))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| protocol(Box::new(e)))?;
    let status = resp.status().as_u16();
    let body = resp.into_body();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(protocol)?
        .to_bytes();
    Ok(Response { status, body })
}

/// Maps a non-2xx response to `NotFound` (404) or `Api`, keeping a bounded message.
pub(crate) fn status_error(runtime: &'static str, id: &str, resp: &Response) -> Error {
    if resp.status == 404 {
        return Error::NotFound {
            runtime,
            id: id.to_owned(),
        };
    }
    let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(4096)]).into_owned();
    // Docker-style `{"message": "..."}` bodies are unwrapped; anything else is kept as text.
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or(text);
    Error::Api {
        runtime,
        status: resp.status,
        message: truncate_message(message.trim().to_owned()),
    }
}
