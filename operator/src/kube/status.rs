//! The RouteConfig's status: what it should say, and when to write it.
//!
//! Several replicas watch one RouteConfig and each reports what it serves. So that they do not
//! make the status flap:
//! - a status is written only when its meaningful content (everything but timestamps) differs
//!   from the one on the object *and* from the last one this process wrote: a replica whose view
//!   differs a little (keys still in grace that a younger replica never had) writes once per
//!   change of its own view, never in a loop against another;
//! - timestamps move only with the content: `lastTransitionTime` when a condition's status
//!   changes, `lastReload` when the content changes after a reload;
//! - every replica applies with one field manager (server-side apply), so none conflicts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use route_crds::{API_VERSION, KIND, RouteConfig, RouteConfigStatus};

use crate::translate::ConfigError;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "route-operator";

pub(crate) const READY: &str = "Ready";
pub(crate) const REJECTED: &str = "SettingsRejected";

/// A trusted key's fingerprint and, for a key in grace, the Unix second its trust ends.
pub(crate) type KeyTrust = (String, Option<u64>);

/// What the control loop last did with the RouteConfig, for the status writer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// `metadata.uid` of the RouteConfig (a recreated one starts afresh).
    pub uid: Option<String>,
    /// `metadata.generation` of the spec the outcome is about.
    pub generation: Option<i64>,
    /// The status on the object as last seen.
    pub seen: Option<RouteConfigStatus>,
    /// `None`: the current spec and Secrets are served; `Some`: why they were refused.
    pub rejected: Option<Vec<ConfigError>>,
    /// The keys of the settings being served, current first (empty: nothing served yet).
    pub signing: Vec<KeyTrust>,
    pub payload: Vec<KeyTrust>,
    /// When this process last published changed settings.
    pub last_reload: Option<Timestamp>,
}

impl Report {
    /// The next Unix second at which a key in grace stops being trusted, after `now`.
    pub(crate) fn next_expiry(&self, now: u64) -> Option<u64> {
        self.signing.iter().chain(&self.payload).filter_map(|(_, until)| *until).filter(|u| *u > now).min()
    }
}

/// The status `report` calls for at `now`, keeping the timestamps of `report.seen` where its
/// content has not changed.
pub(crate) fn desired(report: &Report, now: Timestamp) -> RouteConfigStatus {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let now_unix = u64::try_from(now.as_second()).unwrap_or_default();
    let trusted = |keys: &[KeyTrust]| -> Vec<String> {
        keys.iter()
            .filter(|(_, until)| until.is_none_or(|u| u > now_unix))
            .map(|(fp, _)| fp.clone())
            .collect()
    };
    let signing = trusted(&report.signing);
    let payload = trusted(&report.payload);
    let serving = match (signing.first(), payload.first()) {
        (Some(s), Some(p)) => format!("signing key {s}, payload key {p}"),
        _ => String::new(),
    };
    let (ready, rejected) = match &report.rejected {
        None => (
            condition(
                READY,
                true,
                "Loaded",
                format!("serving generation {} of the spec: {serving}", generation_of(report)),
            ),
            condition(REJECTED, false, "Accepted", String::new()),
        ),
        Some(errors) => {
            let keeps = if serving.is_empty() {
                "nothing is served yet".to_owned()
            } else {
                format!("the previous settings keep serving ({serving})")
            };
            let message =
                format!("generation {} of the spec or its Secrets refused; {keeps}", generation_of(report));
            (
                condition(READY, false, "SettingsRejected", message),
                condition(REJECTED, true, reason(errors), listed(errors)),
            )
        }
    };
    let seen = report.seen.as_ref();
    let conditions = [ready, rejected]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = report.generation;
            let before = seen.and_then(|s| s.conditions.iter().find(|b| b.type_ == c.type_));
            c.last_transition_time = match before {
                Some(before) if before.status == c.status => before.last_transition_time.clone(),
                _ => Time(now),
            };
            c
        })
        .collect();
    let mut status = RouteConfigStatus {
        observed_generation: report.generation,
        conditions,
        signing_key_fingerprints: signing,
        payload_key_fingerprints: payload,
        last_reload: None,
    };
    let unchanged = seen.is_some_and(|s| meaningful(s) == meaningful(&status));
    status.last_reload = match (unchanged, seen) {
        (true, Some(seen)) => seen.last_reload.clone(),
        _ => report
            .last_reload
            .map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t).to_string())
            .or_else(|| seen.and_then(|s| s.last_reload.clone())),
    };
    status
}

fn generation_of(report: &Report) -> String {
    report.generation.map_or_else(|| "?".to_owned(), |g| g.to_string())
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// `SecretNotFound`, `InvalidSecret` or `InvalidSpec`, after the first error.
pub(crate) fn reason(errors: &[ConfigError]) -> &'static str {
    match errors.first() {
        Some(e) if e.place.starts_with("Secret ") && e.message.starts_with("not found") => "SecretNotFound",
        Some(e) if e.place.starts_with("Secret ") => "InvalidSecret",
        _ => "InvalidSpec",
    }
}

/// `place: message; place: message`.
pub(crate) fn listed(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A status without its timestamps, for comparisons.
pub(crate) fn meaningful(status: &RouteConfigStatus) -> RouteConfigStatus {
    let mut status = status.clone();
    status.last_reload = None;
    for c in &mut status.conditions {
        c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
    }
    status
}

/// Whether to write `desired`, given the status on the object and the last one this process
/// wrote (for this object).
pub(crate) fn should_write(
    desired: &RouteConfigStatus,
    seen: Option<&RouteConfigStatus>,
    last_written: Option<&RouteConfigStatus>,
) -> bool {
    let desired = meaningful(desired);
    let seen_ready = seen.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == READY));
    if !seen_ready {
        return true;
    }
    seen.map(meaningful).as_ref() != Some(&desired) && last_written.map(meaningful).as_ref() != Some(&desired)
}

/// Applies `status` to the RouteConfig `name` (server-side apply of the status subresource).
pub(crate) async fn apply(
    api: &Api<RouteConfig>,
    name: &str,
    status: &RouteConfigStatus,
) -> kube::Result<()> {
    let patch = serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "status_tests.rs"]
mod tests;
