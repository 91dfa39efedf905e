//! The HTTP server: `GET /metrics` (Prometheus text format, gzip-compressed when the scraper
//! accepts it, as Prometheus always does), `GET /healthz`; anything else 404.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Renders a /metrics response body (blocking: reads /proc, /sys and cgroup files).
pub type Renderer = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

/// Told how long each whole /metrics response took (render, encoding, compression).
pub type Observer = Arc<dyn Fn(Duration) + Send + Sync>;

/// What `/metrics` serves: the renderer and where its cost goes.
#[derive(Clone)]
pub struct Metrics {
    pub render: Renderer,
    pub observe: Observer,
    /// Whether the agent is ready: `/healthz` answers 503 with the reason until it is.
    pub ready: Readiness,
}

/// Ok when ready; Err with what the agent still waits for.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
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
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, metrics.clone()));
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
    metrics: Metrics,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
    Ok(match (is_get, req.uri().path()) {
        (true, "/metrics") => {
            let gzip = req
                .headers()
                .get_all(ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(accepts_gzip);
            let started = Instant::now();
            let render = metrics.render.clone();
            // Compression is CPU work like rendering: both run off the async workers.
            let built = tokio::task::spawn_blocking(move || {
                let body = render()?;
                if gzip {
                    Ok::<_, anyhow::Error>((gzip_body(body.as_bytes())?, true))
                } else {
                    Ok((body.into_bytes(), false))
                }
            })
            .await;
            match built {
                Ok(Ok((body, gzipped))) => {
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    let headers = resp.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
                    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                    if gzipped {
                        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    }
                    // The response is complete here (hyper only copies the bytes out); the
                    // figure shows in the next scrape, as with every scrape-cost metric.
                    (metrics.observe)(started.elapsed());
                    resp
                }
                Ok(Err(e)) => error_response(format!("failed to render metrics: {e:#}")),
                Err(e) => error_response(format!("metrics renderer panicked: {e}")),
            }
        }
        // Not ready until the containers found at start are named (bounded: see
        // `Registry::readiness`), so the first scrapes after a ready answer are whole.
        (true, "/healthz") => match (metrics.ready)() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Whether one Accept-Encoding header value allows gzip: `gzip` or `*` listed without `q=0`
/// (RFC 9110 12.5.3). Prometheus sends `gzip`; curl --compressed sends `deflate, gzip`.
pub fn accepts_gzip(header: &str) -> bool {
    let mut gzip = None;
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q > 0.0);
        } else if coding == "*" {
            star = Some(q > 0.0);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Fast compression: exposition text is repetitive (label sets repeat on every line), so the
/// fastest level already shrinks it ~10x, at a fraction of the default level's CPU.
fn gzip_body(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    use super::*;

    #[test]
    fn accept_encoding_values() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip"));
        assert!(accepts_gzip("GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(accepts_gzip("br, *;q=0.1"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0, *"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("deflate, br"));
        assert!(!accepts_gzip("*;q=0"));
    }

    #[test]
    fn gzip_round_trip() {
        let text = "container_info{container_id=\"/docker/a\"} 1\n".repeat(1000);
        let packed = gzip_body(text.as_bytes()).unwrap();
        assert!(packed.len() < text.len() / 10, "{}", packed.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }
}
