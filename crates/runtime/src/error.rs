//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed source error (bollard, hyper and serde errors are kept as the cause).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the container runtime clients. `runtime` names the runtime ("docker", "crio", ...).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime does not know the container (HTTP 404): it is gone or was never its.
    #[error("{runtime}: container {id} not found")]
    NotFound {
        /// Runtime name.
        runtime: &'static str,
        /// The container id asked for.
        id: String,
    },
    /// The runtime did not answer in time (it may accept connections and never reply).
    #[error("{runtime} at {} did not answer within {timeout:?}", socket.display())]
    Timeout {
        /// Runtime name.
        runtime: &'static str,
        /// The socket that was asked.
        socket: PathBuf,
        /// The bound that expired.
        timeout: Duration,
    },
    /// The socket is missing, refuses connections or cannot be opened: the runtime is not running here.
    #[error("{runtime} socket {} is unavailable", socket.display())]
    Unavailable {
        /// Runtime name.
        runtime: &'static str,
        /// The socket that was tried.
        socket: PathBuf,
        /// Why it could not be used.
        #[source]
        source: BoxError,
    },
    /// The runtime answered with an HTTP error status other than 404.
    #[error("{runtime} API error (HTTP {status}): {message}")]
    Api {
        /// Runtime name.
        runtime: &'static str,
        /// HTTP status code.
        status: u16,
        /// The runtime's error message (truncated).
        message: String,
    },
    /// A gRPC error status other than NOT_FOUND, DEADLINE_EXCEEDED and UNAVAILABLE (containerd).
    #[error("{runtime} gRPC error (code {code}): {message}")]
    Grpc {
        /// Runtime name.
        runtime: &'static str,
        /// gRPC status code.
        code: u32,
        /// The runtime's error message (truncated).
        message: String,
    },
    /// The runtime answered something that is not a valid HTTP response or not the JSON expected.
    #[error("{runtime} at {} sent a malformed response", socket.display())]
    Protocol {
        /// Runtime name.
        runtime: &'static str,
        /// The socket that answered.
        socket: PathBuf,
        /// The parse or transport error.
        #[source]
        source: BoxError,
    },
    /// A container id that cannot be a runtime id (empty, too long, or with characters that would
    /// change the request path); rejected before any I/O.
    #[error("invalid container id {id:?}")]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// The socket path cannot be used (bollard needs a UTF-8 path).
    #[error("invalid socket path {}", path.display())]
    InvalidSocketPath {
        /// The rejected path.
        path: PathBuf,
    },
}

/// Longest error message kept from a runtime's answer (answers are untrusted and unbounded).
pub(crate) const MAX_MESSAGE_LEN: usize = 512;

/// Truncates a runtime's message at a char boundary so errors stay bounded.
pub(crate) fn truncate_message(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Checks that `id` is a plausible container id before it goes into a request path.
///
/// Runtime ids are hex (Docker, containerd, CRI-O) or names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`);
/// anything with `/`, `?`, `%` or spaces would alter the URL, so it is refused.
pub(crate) fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId {
            id: truncate_message(id.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("0123abcdef").is_ok());
        assert!(validate_id("my_container.1-a").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "../images/json",
            "a/b",
            "a?b",
            "a b",
            "a%2Fb",
            &"a".repeat(257),
        ] {
            assert!(
                matches!(validate_id(bad), Err(Error::InvalidId { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_are_truncated_at_char_boundaries() {
        let s = "é".repeat(MAX_MESSAGE_LEN);
        let t = truncate_message(s);
        assert!(t.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
        assert!(t.ends_with('…'));
        assert_eq!(truncate_message("short".into()), "short");
    }
}
