//! The polling loop shared by the file sources.
//!
//! Polling, not inotify, on purpose: Kubernetes updates mounted Secrets and ConfigMaps by
//! writing a new hidden folder and swapping the `..data` symlink to it, and the files a pod
//! reads are symlinks through `..data`. An inotify watch on the file sees neither the swap nor
//! the new content; re-reading the bytes every poll sees both, costs a few small reads, and
//! works the same for files edited in place.

use std::sync::Arc;
use std::time::Duration;

use route_proxy::Settings;
use tokio::time::MissedTickBehavior;

use crate::publisher::Publisher;
use crate::translate::ConfigError;

/// Every `poll`, takes a snapshot of the source with `read` (the bytes of its files, or why
/// they could not be read) and, when it differs from the last one, builds settings from it
/// with `build`: published on success, rejected (the last good settings keep serving) on error.
///
/// The first snapshot is built and published too: if the caller loaded and published the same
/// content just before, the publisher sees equal settings and publishes nothing new; if the
/// files changed in between, the change is not missed.
pub(crate) async fn watch<T, R, B>(source: String, publisher: Publisher, poll: Duration, read: R, build: B)
where
    T: PartialEq + Send + Sync + 'static,
    R: Fn() -> T + Send + Sync + 'static,
    B: Fn(&T) -> Result<Settings, Vec<ConfigError>> + Send + Sync + 'static,
{
    let read = Arc::new(read);
    let build = Arc::new(build);
    let mut last: Option<Arc<T>> = None;
    let mut ticks = tokio::time::interval(poll);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let read = Arc::clone(&read);
        // File reads and RSA key parsing block; keep them off the runtime's workers.
        let snapshot = match tokio::task::spawn_blocking(move || read()).await {
            Ok(snapshot) => Arc::new(snapshot),
            Err(err) => {
                tracing::error!(source, error = %err, "reading the configuration failed");
                continue;
            }
        };
        if last.as_deref() == Some(&*snapshot) {
            continue;
        }
        if last.is_some() {
            tracing::info!(source, "configuration changed");
        }
        last = Some(Arc::clone(&snapshot));
        let build = Arc::clone(&build);
        match tokio::task::spawn_blocking(move || build(&snapshot)).await {
            Ok(Ok(settings)) => {
                publisher.publish(settings);
            }
            Ok(Err(errors)) => publisher.reject(&source, &errors),
            Err(err) => tracing::error!(source, error = %err, "building the settings failed"),
        }
    }
}
