//! The resource types the server knows: the built-ins (Secrets, Events, Namespaces, CRDs) and
//! those that applied CustomResourceDefinitions register.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::builtin;

/// What a resource type does beyond storing objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Secret,
    Namespace,
    /// `v1` Events.
    Event,
    /// `events.k8s.io/v1` Events: the same objects as `v1` Events, converted.
    EventV1,
    Crd,
    Custom,
}

/// An `additionalPrinterColumns` entry (or a built-in column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl Column {
    pub fn new(name: &str, type_: &str, json_path: &str) -> Self {
        Self {
            name: name.to_owned(),
            type_: type_.to_owned(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: json_path.to_owned(),
        }
    }
}

/// One served version of a resource type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionInfo {
    pub name: String,
    /// The structural schema (`openAPIV3Schema`), applied to writes.
    pub schema: Option<Value>,
    /// Whether the `status` subresource exists.
    pub status: bool,
    /// Printer columns; empty means the default ones.
    pub columns: Vec<Column>,
}

/// A resource type (one group and plural, every served version).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) list_kind: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    /// Served versions, preferred first.
    pub(crate) versions: Vec<VersionInfo>,
    pub(crate) behavior: Behavior,
}

impl ResourceType {
    /// `secrets` or `routeconfigs.route.abcdesktop.io`, as error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub(crate) fn version(&self, name: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_owned() } else { format!("{}/{version}", self.group) }
    }

    pub(crate) fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }

    /// Whether `metadata.generation` is maintained (spec changes bump it).
    pub(crate) fn tracks_generation(&self) -> bool {
        matches!(self.behavior, Behavior::Crd | Behavior::Custom)
    }

    /// Where objects of this type are stored: `events.k8s.io` events are `v1` events.
    pub(crate) fn storage(&self) -> (String, String) {
        match self.behavior {
            Behavior::EventV1 => (String::new(), "events".to_owned()),
            _ => (self.group.clone(), self.plural.clone()),
        }
    }

    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        let mut verbs = vec!["create", "delete"];
        if self.behavior != Behavior::Namespace {
            verbs.push("deletecollection");
        }
        verbs.extend(["get", "list", "patch", "update", "watch"]);
        verbs
    }

    /// Subresources of a version, as discovery lists them.
    pub(crate) fn subresources(&self, version: &str) -> Vec<&'static str> {
        match self.behavior {
            Behavior::Namespace => vec!["status"],
            Behavior::Crd => vec!["status"],
            _ if self.has_status(version) => vec!["status"],
            _ => Vec::new(),
        }
    }
}

/// Every resource type, keyed by (group, plural).
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: BTreeMap<(String, String), Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut types = BTreeMap::new();
        for rt in builtin::types() {
            types.insert((rt.group.clone(), rt.plural.clone()), Arc::new(rt));
        }
        Self { types }
    }

    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.get(&(group.to_owned(), plural.to_owned())).cloned()
    }

    /// The type serving `group/version` under `plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.get(group, plural).filter(|rt| rt.version(version).is_some())
    }

    pub fn insert(&mut self, rt: ResourceType) {
        self.types.insert((rt.group.clone(), rt.plural.clone()), Arc::new(rt));
    }

    pub fn remove(&mut self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.remove(&(group.to_owned(), plural.to_owned()))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Non-core groups with their served versions (preferred first), built-ins first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        let mut order: Vec<&Arc<ResourceType>> =
            self.types.values().filter(|rt| !rt.group.is_empty() && !rt.versions.is_empty()).collect();
        order.sort_by_key(|rt| (rt.behavior == Behavior::Custom, rt.group.clone()));
        for rt in order {
            let entry = match groups.iter_mut().find(|(g, _)| *g == rt.group) {
                Some(entry) => entry,
                None => {
                    groups.push((rt.group.clone(), Vec::new()));
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            for v in &rt.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    /// Types served in `group/version`.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types.values().filter(|rt| rt.group == group && rt.version(version).is_some()).cloned().collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by numbers (`v1` > `v1beta2` > `v1alpha1`).
pub(crate) fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else { return (0, 0, 0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else { return (0, 0, 0) };
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        return (0, 0, 0);
    };
    (level, major, minor)
}
