//! Errors of the agent clients.

use std::path::PathBuf;

/// What went wrong talking to the agent or writing a recording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent's URL is not `http://host:port[/path]` or `host:port`.
    #[error("invalid agent URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Connecting to, writing to or reading from the agent failed.
    #[error("cannot fetch {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The agent answered, but not with a usable 200 response.
    #[error("bad response from {url}: {reason}")]
    Response {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The recording file could not be opened, checked or written.
    #[error("cannot write {path}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The recording file exists with another header (another version or another tool).
    #[error("{path} already holds rows with another header; choose a new file")]
    HeaderMismatch {
        /// The file.
        path: PathBuf,
    },
    /// The terminal could not be set up or drawn on.
    #[error("terminal error")]
    Terminal(#[source] std::io::Error),
    /// Signal handler installation failed.
    #[error("cannot install the {signal} handler")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
