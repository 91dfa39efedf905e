//! The crate's error type: every variant names the URL (or provider) it concerns.

use std::time::Duration;

/// Errors of one metadata fetch. They never leave the background task except as a log line and
/// a count in `sonde_cloud_metadata_errors_total{provider}`; provider code returns them so tests
/// can assert on the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured base URL plus the provider's path is not a valid HTTP request target.
    #[error("cannot build a request to {url:?}")]
    BuildRequest {
        /// The URL as built from the base URL and the provider's path.
        url: String,
        /// Why `http` refused it.
        #[source]
        source: hyper::http::Error,
    },
    /// Connecting or sending failed (refused, reset, DNS for IBM's host name).
    #[error("request to {url} failed")]
    Request {
        /// The URL requested.
        url: String,
        /// The client's error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The service answered with a status other than 200 (404 included where the field is required).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// Reading the body failed, or it was larger than the bound.
    #[error("cannot read the response body of {url}")]
    Body {
        /// The URL requested.
        url: String,
        /// The body error (`LengthLimitError` when over the bound).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The body is not UTF-8 text.
    #[error("the response of {url} is not UTF-8")]
    Utf8 {
        /// The URL requested.
        url: String,
        /// The decoding error.
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// The body is not the JSON the provider documents.
    #[error("the response of {url} is not the expected JSON")]
    Json {
        /// The URL requested.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The answer parsed but lacks the field that identifies the instance.
    #[error("the response of {url} has no {field}")]
    MissingField {
        /// The URL requested.
        url: String,
        /// The missing field's name in the provider's format.
        field: &'static str,
    },
    /// The whole fetch (all requests of one provider) did not finish within the timeout.
    #[error("the {provider} metadata service did not answer within {timeout:?}")]
    Timeout {
        /// The provider's label value.
        provider: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
}
