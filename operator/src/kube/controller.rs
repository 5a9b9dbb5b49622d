//! The control loop: watcher updates in, translate(), the Publisher, and reports out.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, Resource as _};
use route_crds::RouteConfig;
use route_proxy::Settings;
use route_proxy::settings::Trusted;
use tokio::sync::{mpsc, watch as channel};

use super::events::{Events, Notice};
use super::state::{Inputs, Readiness, State};
use super::status::{self, KeyTrust, Report};
use super::{Config, watch, writer};
use crate::publisher::Publisher;
use crate::translate::{ConfigError, translate};

/// How often the loop says what it is waiting for while nothing is served.
const WAITING_LOG: Duration = Duration::from_secs(10);

/// Everything the loop remembers between updates.
struct Loop {
    config: Config,
    publisher: Publisher,
    events: Events,
    reports: channel::Sender<Option<Report>>,
    /// The inputs last translated, and whether they were refused.
    last: Option<(Inputs, Option<Vec<ConfigError>>)>,
    /// The RouteConfig last seen, to name it in events once deleted.
    reference: Option<ObjectReference>,
    /// When this process last published changed settings.
    last_reload: Option<Timestamp>,
}

pub(super) async fn run(client: Client, config: Config, publisher: Publisher) {
    let (tx, mut rx) = mpsc::channel(64);
    let metrics = publisher.metrics();
    let _route_config = AbortOnDrop(watch::route_config(
        client.clone(),
        &config.namespace,
        &config.name,
        tx.clone(),
        metrics,
    ));
    let mut secrets = watch::SecretWatchers::new(client.clone(), &config.namespace, tx, metrics);
    let (reports, report_rx) = channel::channel(None);
    let api: Api<RouteConfig> = Api::namespaced(client.clone(), &config.namespace);
    let _writer = AbortOnDrop(tokio::spawn(writer::run(api, config.name.clone(), report_rx)));
    let events = Events::start(client, config.instance.clone());
    let mut this =
        Loop { config, publisher, events, reports, last: None, reference: None, last_reload: None };
    let mut state = State::default();
    let mut waiting_for = String::from("the RouteConfig is not listed yet");
    loop {
        let update = tokio::select! {
            update = rx.recv() => update,
            () = tokio::time::sleep(WAITING_LOG), if !this.publisher.current().is_loaded() => {
                tracing::warn!(waiting_for = %waiting_for, "no settings loaded yet: /readyz answers 503");
                continue;
            }
        };
        let Some(update) = update else { return };
        state.apply(update);
        // Take every queued update before translating: one build for a burst of changes.
        while let Ok(update) = rx.try_recv() {
            state.apply(update);
        }
        secrets.set(&state.wanted());
        if let Some(rc) = state.route_config() {
            this.reference = Some(rc.object_ref(&()));
        }
        match state.readiness() {
            Readiness::Waiting(what) => {
                tracing::debug!(waiting_for = %what, "waiting");
                waiting_for = what;
            }
            Readiness::NoRouteConfig => {
                waiting_for = format!("RouteConfig {}/{} not found", this.config.namespace, this.config.name);
                this.route_config_gone();
            }
            Readiness::Ready(inputs) => this.build(*inputs, &state).await,
        }
    }
}

impl Loop {
    /// Translates `inputs` (unless they are the ones last translated) and publishes or rejects
    /// the result, then reports.
    async fn build(&mut self, inputs: Inputs, state: &State) {
        let rejected = match self.last.take() {
            Some((last, rejected)) if last == inputs => rejected,
            previous => {
                let previous = previous.and_then(|(_, rejected)| rejected);
                let ctx = self.config.ctx.clone();
                let (spec, secrets) = (inputs.spec.clone(), inputs.secrets.clone());
                // RSA key parsing is CPU work: off the runtime's workers.
                let result = tokio::task::spawn_blocking(move || translate(&spec, &secrets, &ctx)).await;
                match result {
                    Ok(Ok(settings)) => {
                        self.publish(settings);
                        None
                    }
                    Ok(Err(errors)) => {
                        self.reject(&errors, previous.as_deref());
                        Some(errors)
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "translating the settings failed");
                        return;
                    }
                }
            }
        };
        self.last = Some((inputs.clone(), rejected.clone()));
        let rc = state.route_config();
        let current = self.publisher.current();
        let report = Report {
            uid: rc.and_then(|rc| rc.metadata.uid.clone()),
            generation: inputs.generation,
            seen: rc.and_then(|rc| rc.status.clone()),
            rejected,
            signing: trust(&current.auth.keys.signing),
            payload: trust(&current.auth.keys.payload),
            last_reload: self.last_reload,
        };
        self.reports.send_if_modified(|old| {
            let changed = old.as_ref() != Some(&report);
            *old = Some(report);
            changed
        });
    }

    fn publish(&mut self, settings: Settings) {
        let before = self.publisher.current();
        let generation = self.publisher.publish(settings);
        if generation == before.generation {
            return;
        }
        self.last_reload = Some(Timestamp::now());
        let after = self.publisher.current();
        let Some(reference) = &self.reference else { return };
        let (signing, payload) = (current_fp(&after.auth.keys.signing), current_fp(&after.auth.keys.payload));
        if !before.is_loaded() {
            let note = format!("serving signing key {signing}, payload key {payload}");
            self.events.send(reference, Notice::normal("SettingsLoaded", note));
            return;
        }
        let grace = after.auth.grace.as_secs();
        let rotations = [
            ("SigningKeyRotated", "signing", current_fp(&before.auth.keys.signing), signing),
            ("PayloadKeyRotated", "payload", current_fp(&before.auth.keys.payload), payload),
        ];
        let mut rotated = false;
        for (reason, which, old, new) in rotations {
            if old != new {
                rotated = true;
                tracing::info!(key = which, old = %old, new = %new, grace_seconds = grace, "key rotated");
                let note = format!("{which} key {old} replaced by {new}; {old} stays trusted for {grace} s");
                self.events.send(reference, Notice::normal(reason, note));
            }
        }
        if !rotated {
            self.events.send(
                reference,
                Notice::normal("SettingsLoaded", format!("settings generation {generation}")),
            );
        }
    }

    /// Reports refused settings; an event only when the errors differ from the `previous` ones.
    fn reject(&mut self, errors: &[ConfigError], previous: Option<&[ConfigError]>) {
        self.publisher.reject(&self.config.ctx.source, errors);
        if let (false, Some(reference)) = (previous == Some(errors), &self.reference) {
            self.events.send(reference, Notice::warning("SettingsRejected", status::listed(errors)));
        }
    }

    /// The RouteConfig is gone (or was never created): the last good settings keep serving.
    fn route_config_gone(&mut self) {
        self.reports.send_replace(None);
        if self.last.take().is_none() {
            tracing::warn!(
                namespace = %self.config.namespace,
                name = %self.config.name,
                "RouteConfig not found; waiting for it"
            );
            return;
        }
        let place = format!("RouteConfig {}/{}", self.config.namespace, self.config.name);
        let error = ConfigError::new(place, "deleted: the last good settings keep serving");
        self.publisher.reject(&self.config.ctx.source, std::slice::from_ref(&error));
        if let Some(reference) = &self.reference {
            self.events.send(reference, Notice::warning("RouteConfigDeleted", error.to_string()));
        }
    }
}

fn trust<K: HasFingerprint>(keys: &[Trusted<K>]) -> Vec<KeyTrust> {
    keys.iter().map(|t| (t.key.fp().to_owned(), t.until)).collect()
}

fn current_fp<K: HasFingerprint>(keys: &[Trusted<K>]) -> String {
    keys.iter().find(|k| k.until.is_none()).map_or_else(|| "none".to_owned(), |k| k.key.fp().to_owned())
}

trait HasFingerprint {
    fn fp(&self) -> &str;
}

impl HasFingerprint for route_proxy::keys::VerifyKey {
    fn fp(&self) -> &str {
        self.fingerprint()
    }
}

impl HasFingerprint for route_proxy::keys::DecryptKey {
    fn fp(&self) -> &str {
        self.fingerprint()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
