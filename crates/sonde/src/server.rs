//! The HTTP server: `GET /metrics` (Prometheus text format), `GET /healthz`; anything else 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Renders a /metrics response body (blocking: reads /proc, /sys and cgroup files).
pub type Renderer = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    render: Renderer,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: say it, back off a little, keep serving.
                    tracing::warn!(error = %e, "Failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, render.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    render: Renderer,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
    Ok(match (is_get, req.uri().path()) {
        (true, "/metrics") => match tokio::task::spawn_blocking(move || render()).await {
            Ok(Ok(body)) => {
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
                resp
            }
            Ok(Err(e)) => error_response(format!("failed to render metrics: {e:#}")),
            Err(e) => error_response(format!("metrics renderer panicked: {e}")),
        },
        (true, "/healthz") => text(StatusCode::OK, "ok\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

fn error_response(message: String) -> Response<Full<Bytes>> {
    tracing::error!(error = %message, "Scrape failed");
    text(StatusCode::INTERNAL_SERVER_ERROR, &message)
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Binds the listen address, with a message that names the flag when it fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--listen): {e}"))
}
