//! The background task (detect, fetch, refresh) and the handle the scrape reads from.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::http::MetadataClient;
use crate::{CloudConfig, CloudInfo, Dmi, Error, Overrides, Provider, detect_provider, provider};

/// First retry after a failed fetch; doubles per consecutive failure up to the refresh
/// interval, so a service that is not reachable yet at boot is retried soon, and a broken one
/// costs at most one request per refresh interval.
const RETRY_BASE: Duration = Duration::from_secs(30);
/// Floor for the refresh interval: a zero interval would spin on the metadata service.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detection {
    Pending,
    Done(Option<Provider>),
}

#[derive(Debug, Clone)]
struct State {
    detection: Detection,
    /// Last successful answer, before overrides; kept across failed refreshes.
    last_good: Option<CloudInfo>,
    /// Finished fetches, successful or not.
    attempts: u64,
    /// Failed fetches of the detected provider.
    errors: u64,
}

/// Cheap-to-clone view of the cloud state. Reads take a short uncontended lock and never wait
/// for the network.
#[derive(Debug, Clone)]
pub struct CloudHandle {
    state: watch::Receiver<State>,
    overrides: Arc<Overrides>,
}

impl CloudHandle {
    /// The labels to render, or `None` when nothing is known: the last good metadata with the
    /// overrides applied; before any success (or on an unrecognised machine) the overrides
    /// alone, with `provider` from DMI unless overridden, when at least one override is given.
    pub fn current(&self) -> Option<CloudInfo> {
        let state = self.state.borrow();
        match &state.last_good {
            Some(info) => Some(self.overrides.apply(info.clone())),
            None if self.overrides.is_empty() => None,
            None => {
                let provider = match state.detection {
                    Detection::Done(Some(p)) => p.as_str(),
                    _ => "",
                };
                Some(self.overrides.apply(CloudInfo {
                    provider: provider.to_owned(),
                    ..CloudInfo::default()
                }))
            }
        }
    }

    /// `sonde_cloud_metadata_errors_total{provider}`: one entry (starting at 0) once a provider
    /// is detected, none on machines that query no metadata service.
    pub fn errors_total(&self) -> Vec<(String, u64)> {
        let state = self.state.borrow();
        match state.detection {
            Detection::Done(Some(p)) => vec![(p.as_str().to_owned(), state.errors)],
            _ => Vec::new(),
        }
    }

    /// The provider DMI named; `None` while detection runs or when none was recognised.
    pub fn provider(&self) -> Option<Provider> {
        match self.state.borrow().detection {
            Detection::Done(p) => p,
            Detection::Pending => None,
        }
    }

    /// Finished metadata fetches so far (successful or not).
    pub fn attempts(&self) -> u64 {
        self.state.borrow().attempts
    }

    /// Waits until detection has run and returns its result (for tests and start-up logs).
    pub async fn wait_detected(&self) -> Option<Provider> {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| s.detection != Detection::Pending).await;
        self.provider()
    }

    /// Waits until at least `n` fetches have finished, or the task has ended (unrecognised
    /// machine, no runtime). For tests; callers bound it with their own timeout.
    pub async fn wait_for_attempts(&self, n: u64) {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| s.attempts >= n).await;
    }
}

/// Starts detection and the refresh loop on the current tokio runtime and returns at once.
/// Outside a runtime it logs a warning and returns a handle that shows the overrides only.
/// The task ends when every handle is dropped.
pub fn spawn(config: CloudConfig) -> CloudHandle {
    let (tx, rx) = watch::channel(State {
        detection: Detection::Pending,
        last_good: None,
        attempts: 0,
        errors: 0,
    });
    let handle = CloudHandle {
        state: rx,
        overrides: Arc::new(config.overrides.clone()),
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(run(config, tx));
        }
        Err(_) => tracing::warn!(
            "Cloud metadata disabled: spawn() called outside a tokio runtime; \
             node_cloud_info shows the overrides only"
        ),
    }
    handle
}

async fn run(config: CloudConfig, tx: watch::Sender<State>) {
    let root = config.host_root.clone();
    let dmi = tokio::task::spawn_blocking(move || Dmi::read(&root))
        .await
        .unwrap_or_default();
    let detected = detect_provider(&dmi);
    tx.send_modify(|s| s.detection = Detection::Done(detected));
    let Some(provider) = detected else {
        tracing::info!(
            sys_vendor = %dmi.sys_vendor,
            product_name = %dmi.product_name,
            "No cloud provider recognised from DMI; no metadata service will be queried"
        );
        return;
    };
    tracing::info!(
        provider = provider.as_str(),
        "Cloud provider detected from DMI"
    );

    let client = MetadataClient::new(config.timeout);
    let base = config.endpoints.get(provider).to_owned();
    let refresh = config.refresh_interval.max(MIN_INTERVAL);
    let mut failures: u32 = 0;
    loop {
        let result =
            tokio::time::timeout(config.timeout, provider::fetch(provider, &client, &base))
                .await
                .unwrap_or(Err(Error::Timeout {
                    provider: provider.as_str(),
                    timeout: config.timeout,
                }));
        let delay = match result {
            Ok(info) => {
                failures = 0;
                if tx.borrow().last_good.as_ref() != Some(&info) {
                    tracing::info!(
                        provider = provider.as_str(),
                        region = %info.region,
                        availability_zone = %info.availability_zone,
                        instance_type = %info.instance_type,
                        instance_life_cycle = %info.instance_life_cycle,
                        "Cloud metadata updated"
                    );
                }
                tx.send_modify(|s| {
                    s.last_good = Some(info);
                    s.attempts += 1;
                });
                refresh
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures, refresh);
                let error = error_chain(&e);
                if failures == 1 {
                    tracing::warn!(provider = provider.as_str(), error = %error, retry_in = ?delay,
                        "Cloud metadata fetch failed; keeping the last known labels");
                } else {
                    tracing::debug!(provider = provider.as_str(), error = %error, failures, retry_in = ?delay,
                        "Cloud metadata fetch failed again");
                }
                tx.send_modify(|s| {
                    s.errors += 1;
                    s.attempts += 1;
                });
                delay
            }
        };
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// `RETRY_BASE * 2^(failures-1)`, capped at the refresh interval.
fn retry_delay(failures: u32, refresh: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(factor).min(refresh)
}

/// The error with its sources, `a: b: c`, for one log field.
fn error_chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backs_off_up_to_refresh() {
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_delay(1, hour), Duration::from_secs(30));
        assert_eq!(retry_delay(2, hour), Duration::from_secs(60));
        assert_eq!(retry_delay(7, hour), Duration::from_secs(1920));
        assert_eq!(retry_delay(8, hour), hour);
        assert_eq!(retry_delay(u32::MAX, hour), hour);
        let short = Duration::from_millis(50);
        assert_eq!(retry_delay(1, short), short);
    }

    #[test]
    fn error_chain_includes_sources() {
        let json = serde_json::from_str::<u8>("x").err();
        let Some(source) = json else {
            panic!("\"x\" parsed as u8");
        };
        let e = Error::Json {
            url: "http://h/p".into(),
            source,
        };
        let text = error_chain(&e);
        assert!(text.starts_with("the response of http://h/p is not the expected JSON: "));
        assert!(text.len() > "the response of http://h/p is not the expected JSON: ".len());
    }
}
