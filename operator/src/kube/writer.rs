//! The status writer: a task that keeps the RouteConfig's status in line with the latest
//! [`Report`], writing only when [`status::should_write`] says so, retrying failed writes with
//! backoff, and waking when a key's grace ends so that its fingerprint leaves the status.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use route_crds::{RouteConfig, RouteConfigStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use super::status::{self, Report};

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs until the sender of `reports` is gone. `None` means there is no RouteConfig to write to.
pub(crate) async fn run(api: Api<RouteConfig>, name: String, mut reports: watch::Receiver<Option<Report>>) {
    // The last status this process wrote, with the uid of the object it went to.
    let mut written: Option<(Option<String>, RouteConfigStatus)> = None;
    let mut retry = RETRY_FIRST;
    loop {
        let report = reports.borrow_and_update().clone();
        let mut wake: Option<Instant> = None;
        if let Some(report) = report {
            let now = Timestamp::now();
            let desired = status::desired(&report, now);
            let last = written.as_ref().filter(|(uid, _)| *uid == report.uid).map(|(_, s)| s);
            if status::should_write(&desired, report.seen.as_ref(), last) {
                match status::apply(&api, &name, &desired).await {
                    Ok(()) => {
                        tracing::info!(
                            generation = ?desired.observed_generation,
                            ready = %ready(&desired),
                            signing_keys = ?desired.signing_key_fingerprints,
                            payload_keys = ?desired.payload_key_fingerprints,
                            "status written"
                        );
                        written = Some((report.uid.clone(), desired));
                        retry = RETRY_FIRST;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?retry, "cannot write the status");
                        wake = Some(Instant::now() + retry);
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
            let now_unix = u64::try_from(now.as_second()).unwrap_or_default();
            if let Some(expiry) = report.next_expiry(now_unix) {
                let at = Instant::now() + Duration::from_secs(expiry - now_unix);
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        tokio::select! {
            changed = reports.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn ready(status: &RouteConfigStatus) -> &str {
    status.conditions.iter().find(|c| c.type_ == status::READY).map_or("Unknown", |c| c.status.as_str())
}
