//! A minimal HTTP/1 client for metadata services: plain http, no keep-alive, bounded bodies.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Error;

/// Largest metadata answer read; every documented answer is a few KiB at most, so anything
/// larger is a misbehaving service and is refused rather than buffered.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The client every provider uses. Cloning is cheap.
#[derive(Debug, Clone)]
pub(crate) struct MetadataClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl MetadataClient {
    /// `connect_timeout` bounds the TCP connect; the caller bounds the whole fetch.
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        // No pooling (coroot sets DisableKeepAlives too): a refresh happens once an hour, so a
        // pooled connection would only ever be a stale one.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self { client }
    }

    /// Sends one request; `Ok(None)` for 404 (the service's "no such field"), the body as text
    /// for 200, an error otherwise.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<String>, Error> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Empty::new())
            .map_err(|source| Error::BuildRequest {
                url: url.to_owned(),
                source,
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|source| Error::Request {
                url: url.to_owned(),
                source,
            })?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(Error::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|source| Error::Body {
                url: url.to_owned(),
                source,
            })?
            .to_bytes();
        String::from_utf8(body.to_vec())
            .map(Some)
            .map_err(|source| Error::Utf8 {
                url: url.to_owned(),
                source,
            })
    }

    /// GET of a field that may legitimately be absent (404 -> `None`); the text is trimmed.
    pub(crate) async fn get_optional(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<String>, Error> {
        Ok(self
            .call(Method::GET, url, headers)
            .await?
            .map(|s| s.trim().to_owned()))
    }

    /// GET of a field that must be there: 404 is an error too.
    pub(crate) async fn get_required(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, Error> {
        self.get_optional(url, headers)
            .await?
            .ok_or_else(|| Error::Status {
                url: url.to_owned(),
                status: StatusCode::NOT_FOUND.as_u16(),
            })
    }

    /// PUT without a body (AWS and IBM token endpoints); 404 is an error.
    pub(crate) async fn put(&self, url: &str, headers: &[(&str, &str)]) -> Result<String, Error> {
        self.call(Method::PUT, url, headers)
            .await?
            .ok_or_else(|| Error::Status {
                url: url.to_owned(),
                status: StatusCode::NOT_FOUND.as_u16(),
            })
    }
}

/// Joins a base URL (`http://host[:port]`, with or without a trailing slash) and an absolute path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Parses a JSON body, naming the URL on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    url: &str,
    body: &str,
) -> Result<T, Error> {
    serde_json::from_str(body).map_err(|source| Error::Json {
        url: url.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_handles_trailing_slash() {
        assert_eq!(join("http://a:1/", "/x/y"), "http://a:1/x/y");
        assert_eq!(join("http://a:1", "/x/y"), "http://a:1/x/y");
    }
}
