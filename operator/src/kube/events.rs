//! Kubernetes Events (`events.k8s.io/v1`, through kube-runtime's `Recorder`) about the
//! RouteConfig: settings loaded, rejected, keys rotated, the RouteConfig deleted. Sent from a
//! task of their own, so a slow or absent API server never holds up the control loop; an
//! event that cannot be sent is logged and dropped.
//!
//! kube-runtime's `Recorder` groups events by type, action, reason and object for six minutes,
//! not by note: a second, different rejection would only bump the first Event's count and keep
//! its message. So each reason keeps its last note and its own `Recorder`; a new note gets a
//! new `Recorder`, hence a new Event, and only the same note again joins the series.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tracing::Instrument as _;

/// The reporting controller named in events.
pub const CONTROLLER: &str = "route";

/// The longest note the API accepts.
const NOTE_MAX: usize = 1024;

/// One thing to tell about the RouteConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub warning: bool,
    /// `SettingsLoaded`, `SettingsRejected`, `SigningKeyRotated`, `PayloadKeyRotated`,
    /// `RouteConfigDeleted`.
    pub reason: &'static str,
    pub note: String,
}

impl Notice {
    pub(crate) fn normal(reason: &'static str, note: String) -> Self {
        Self { warning: false, reason, note }
    }

    pub(crate) fn warning(reason: &'static str, note: String) -> Self {
        Self { warning: true, reason, note }
    }
}

/// Where notices go.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    tx: mpsc::Sender<(ObjectReference, Notice)>,
}

impl Events {
    /// Starts the sending task. `instance` names this replica (its pod name).
    pub(crate) fn start(client: Client, instance: Option<String>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, Notice)>(64);
        let reporter = Reporter { controller: CONTROLLER.into(), instance };
        let mut recorders = Recorders::default();
        let task = async move {
            while let Some((reference, notice)) = rx.recv().await {
                let recorder =
                    recorders.for_notice(&notice, || Recorder::new(client.clone(), reporter.clone()));
                let event = Event {
                    type_: if notice.warning { EventType::Warning } else { EventType::Normal },
                    reason: notice.reason.into(),
                    note: Some(truncate(&notice.note, NOTE_MAX)),
                    action: "Reload".into(),
                    secondary: None,
                };
                if let Err(err) = recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %err, reason = notice.reason, "cannot record an event");
                }
            }
        };
        tokio::spawn(task.instrument(tracing::info_span!("events")));
        Self { tx }
    }

    /// Queues a notice about `reference`; dropped (and logged) when the queue is full.
    pub(crate) fn send(&self, reference: &ObjectReference, notice: Notice) {
        if let Err(err) = self.tx.try_send((reference.clone(), notice)) {
            tracing::warn!(error = %err, "event queue full: event dropped");
        }
    }
}

/// One `Recorder` per (type, reason), kept while the note stays the same.
struct Recorders<R> {
    by_reason: HashMap<(bool, &'static str), (String, R)>,
}

impl<R> Default for Recorders<R> {
    fn default() -> Self {
        Self { by_reason: HashMap::new() }
    }
}

impl<R> Recorders<R> {
    /// The recorder for `notice`: the one of its reason if its last note was this one (the
    /// Event's series goes on), else a new one from `new` (a new Event).
    fn for_notice(&mut self, notice: &Notice, new: impl FnOnce() -> R) -> &R {
        let key = (notice.warning, notice.reason);
        let fresh = self.by_reason.get(&key).is_none_or(|(note, _)| *note != notice.note);
        if fresh {
            self.by_reason.insert(key, (notice.note.clone(), new()));
        }
        &self.by_reason[&key].1
    }
}

/// At most `max` bytes of `text`, cut on a character boundary, `…` marking a cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_note_gets_a_new_recorder_the_same_note_the_same() {
        let mut recorders = Recorders::default();
        let mut made = 0;
        let mut get = |notice: &Notice| {
            *recorders.for_notice(notice, || {
                made += 1;
                made
            })
        };
        let first = Notice::warning("SettingsRejected", "Secret a: bad".into());
        let second = Notice::warning("SettingsRejected", "Secret b: missing".into());
        assert_eq!(get(&first), 1);
        assert_eq!(get(&first), 1, "the same note joins the first Event's series");
        assert_eq!(get(&second), 2, "a different note is a new Event");
        assert_eq!(get(&first), 3, "and back: a new Event again, not the stale first one");
        assert_eq!(get(&Notice::normal("SettingsLoaded", "Secret a: bad".into())), 4, "per reason and type");
    }

    #[test]
    fn notes_are_cut_to_the_api_limit() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, NOTE_MAX);
        assert!(cut.len() <= NOTE_MAX && cut.ends_with('…'), "{}", cut.len());
    }
}
