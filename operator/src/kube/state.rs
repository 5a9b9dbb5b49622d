//! What the watchers have seen: the RouteConfig and the Secrets it names, each known, absent,
//! or not listed yet. Pure: the control loop feeds it watcher updates and asks it for the inputs
//! of translate() once everything they need has been listed.

use std::collections::{BTreeMap, BTreeSet};

use route_crds::{RouteConfig, RouteConfigSpec};

use crate::translate::Secrets;

/// The data of one Secret: key -> bytes (`data`, already base64-decoded).
pub(crate) type SecretData = BTreeMap<String, Vec<u8>>;

/// What a watcher reported about its one object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Update {
    /// The RouteConfig as listed or changed; `None` when there is none (deleted, or never created).
    RouteConfig(Option<Box<RouteConfig>>),
    /// A Secret as listed or changed; `None` when there is none.
    Secret { name: String, data: Option<SecretData> },
}

/// One watched object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Known<T> {
    /// Its watcher has not finished its first list.
    #[default]
    Unknown,
    Absent,
    Present(T),
}

/// Everything translate() takes from the cluster.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inputs {
    pub spec: RouteConfigSpec,
    /// `metadata.generation` of the RouteConfig the spec is from.
    pub generation: Option<i64>,
    /// The Secrets the spec names that exist.
    pub secrets: Secrets,
}

/// Whether translate() can run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Readiness {
    /// Something is not listed yet (the first list after start, or a newly named Secret).
    Waiting(String),
    /// The RouteConfig does not exist.
    NoRouteConfig,
    Ready(Box<Inputs>),
}

#[derive(Debug, Default)]
pub(crate) struct State {
    route_config: Known<Box<RouteConfig>>,
    secrets: BTreeMap<String, Known<SecretData>>,
}

impl State {
    /// Takes in an update. A Secret that is no longer named is ignored (its watcher is stopping).
    pub(crate) fn apply(&mut self, update: Update) {
        match update {
            Update::RouteConfig(rc) => {
                self.route_config = rc.map_or(Known::Absent, Known::Present);
                self.retain_wanted();
            }
            Update::Secret { name, data } => {
                if let Some(slot) = self.secrets.get_mut(&name) {
                    *slot = data.map_or(Known::Absent, Known::Present);
                }
            }
        }
    }

    /// The RouteConfig last seen, if any.
    pub(crate) fn route_config(&self) -> Option<&RouteConfig> {
        match &self.route_config {
            Known::Present(rc) => Some(rc),
            _ => None,
        }
    }

    /// The Secrets the current spec names: the two key Secrets and the TLS one.
    pub(crate) fn wanted(&self) -> BTreeSet<String> {
        self.route_config().map(|rc| referenced(&rc.spec)).unwrap_or_default()
    }

    /// Drops the Secrets no longer named and adds the newly named ones as not listed yet.
    fn retain_wanted(&mut self) {
        let wanted = self.wanted();
        self.secrets.retain(|name, _| wanted.contains(name));
        for name in wanted {
            self.secrets.entry(name).or_default();
        }
    }

    pub(crate) fn readiness(&self) -> Readiness {
        let rc = match &self.route_config {
            Known::Unknown => return Readiness::Waiting("the RouteConfig is not listed yet".into()),
            Known::Absent => return Readiness::NoRouteConfig,
            Known::Present(rc) => rc,
        };
        let mut secrets = Secrets::new();
        for (name, known) in &self.secrets {
            match known {
                Known::Unknown => return Readiness::Waiting(format!("Secret {name} is not listed yet")),
                Known::Absent => {}
                Known::Present(data) => {
                    secrets.insert(name.clone(), data.clone());
                }
            }
        }
        Readiness::Ready(Box::new(Inputs {
            spec: rc.spec.clone(),
            generation: rc.metadata.generation,
            secrets,
        }))
    }
}

/// The names of the Secrets a spec refers to (empty names are left to translate() to report).
pub(crate) fn referenced(spec: &RouteConfigSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert(spec.keys.signing.secret_name.clone());
    names.insert(spec.keys.payload.secret_name.clone());
    if let Some(tls) = &spec.tls {
        names.insert(tls.secret_name.clone());
    }
    names.retain(|name| !name.is_empty());
    names
}

#[cfg(test)]
mod tests {
    use route_crds::{PAYLOAD_SECRET, SIGNING_SECRET, TlsSpec};

    use super::*;

    fn rc(spec: RouteConfigSpec, generation: i64) -> Update {
        let mut rc = RouteConfig::new("route", spec);
        rc.metadata.generation = Some(generation);
        Update::RouteConfig(Some(Box::new(rc)))
    }

    fn secret(name: &str, value: &[u8]) -> Update {
        Update::Secret { name: name.into(), data: Some(BTreeMap::from([("k".to_owned(), value.to_vec())])) }
    }

    #[test]
    fn waits_for_every_first_list() {
        let mut state = State::default();
        assert!(matches!(state.readiness(), Readiness::Waiting(_)));
        state.apply(rc(RouteConfigSpec::default(), 1));
        assert_eq!(state.wanted(), BTreeSet::from([PAYLOAD_SECRET.to_owned(), SIGNING_SECRET.to_owned()]));
        assert!(matches!(state.readiness(), Readiness::Waiting(w) if w.contains("not listed")));
        state.apply(secret(SIGNING_SECRET, b"a"));
        assert!(matches!(state.readiness(), Readiness::Waiting(w) if w.contains(PAYLOAD_SECRET)));
        state.apply(Update::Secret { name: PAYLOAD_SECRET.into(), data: None });
        let Readiness::Ready(inputs) = state.readiness() else { panic!("not ready") };
        assert_eq!(inputs.generation, Some(1));
        assert_eq!(inputs.secrets.keys().collect::<Vec<_>>(), [SIGNING_SECRET]);
    }

    #[test]
    fn a_newly_named_secret_is_waited_for_and_an_unnamed_one_forgotten() {
        let mut state = State::default();
        state.apply(rc(RouteConfigSpec::default(), 1));
        state.apply(secret(SIGNING_SECRET, b"a"));
        state.apply(secret(PAYLOAD_SECRET, b"b"));
        assert!(matches!(state.readiness(), Readiness::Ready(_)));

        let mut spec = RouteConfigSpec::default();
        spec.keys.signing.secret_name = "other".into();
        spec.tls = Some(TlsSpec { secret_name: "tls".into() });
        state.apply(rc(spec, 2));
        assert_eq!(
            state.wanted(),
            BTreeSet::from(["other".to_owned(), PAYLOAD_SECRET.to_owned(), "tls".to_owned()])
        );
        assert!(matches!(state.readiness(), Readiness::Waiting(_)));
        // A late update for the Secret no longer named changes nothing.
        state.apply(secret(SIGNING_SECRET, b"c"));
        state.apply(secret("other", b"d"));
        state.apply(secret("tls", b"e"));
        let Readiness::Ready(inputs) = state.readiness() else { panic!("not ready") };
        assert_eq!(
            inputs.secrets.keys().collect::<Vec<_>>(),
            ["abcdesktopjwtdesktoppayload", "other", "tls"]
        );
        assert_eq!(inputs.secrets["other"]["k"], b"d");
    }

    #[test]
    fn a_deleted_route_config_is_reported_and_its_secrets_dropped() {
        let mut state = State::default();
        state.apply(rc(RouteConfigSpec::default(), 1));
        state.apply(Update::RouteConfig(None));
        assert_eq!(state.readiness(), Readiness::NoRouteConfig);
        assert!(state.wanted().is_empty());
        assert!(state.secrets.is_empty());
    }
}

/// The CRD's CEL rules name the built-in routes and services (route-crds cannot see the table):
/// they must be the ones translate() builds.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod builtin_names {
    use std::collections::BTreeSet;

    use route_crds::{BUILTIN_ROUTES, BUILTIN_SERVICES, RouteConfigSpec, SERVICE_ROUTES};
    use route_proxy::route_table::Backend;

    use crate::test_support::{ctx, key_secrets};
    use crate::translate::translate;

    #[test]
    fn the_crd_rules_know_the_builtin_table() {
        let settings = translate(&RouteConfigSpec::default(), &key_secrets("rsa1024-pkcs1"), &ctx()).unwrap();
        let routes: Vec<_> = settings.routes.iter().map(|(_, route)| route).collect();
        let names: BTreeSet<&str> = routes.iter().map(|r| &*r.name).collect();
        assert_eq!(names, BUILTIN_ROUTES.into_iter().collect());
        let services: BTreeSet<&str> = routes
            .iter()
            .filter(|r| matches!(r.backend, Backend::Service { .. }))
            .map(|r| &*r.name)
            .collect();
        assert_eq!(services, SERVICE_ROUTES.into_iter().collect());
        let hosts: BTreeSet<String> = routes
            .iter()
            .filter_map(|r| match &r.backend {
                Backend::Service { host, .. } => Some(host.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(hosts, BUILTIN_SERVICES.into_iter().map(str::to_owned).collect());
    }
}
