//! The in-memory store: objects, the one global resourceVersion counter, the change history that
//! watches replay (compactable), and the live watchers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::resources::Registry;
use crate::status::{ApiError, ApiResult};

/// `(storage group, storage plural, namespace or "", name)`.
pub(crate) type StoreKey = (String, String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: ChangeKind,
    pub key: StoreKey,
    /// The new object; for a deletion, the last state with the deletion's resourceVersion.
    pub object: Value,
    /// The previous object (modifications and deletions).
    pub old: Option<Value>,
}

struct Watcher {
    group: String,
    plural: String,
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<Arc<Change>>,
}

/// Everything the server holds, behind one lock.
pub(crate) struct Store {
    pub registry: Registry,
    objects: BTreeMap<StoreKey, Value>,
    rv: u64,
    /// Follows `rv`, for reads that wait for the store to reach a resourceVersion.
    rv_signal: watch::Sender<u64>,
    history: VecDeque<Arc<Change>>,
    /// The history holds every change with a resourceVersion above this one.
    oldest: u64,
    watchers: Vec<Watcher>,
    max_history: usize,
}

/// Namespaces every cluster has.
pub(crate) const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Store {
    pub fn new() -> Self {
        let mut store = Self {
            registry: Registry::with_builtins(),
            objects: BTreeMap::new(),
            rv: 0,
            rv_signal: watch::Sender::new(0),
            history: VecDeque::new(),
            oldest: 0,
            watchers: Vec::new(),
            max_history: 100_000,
        };
        for ns in INITIAL_NAMESPACES {
            let object = crate::kinds::new_namespace(ns);
            store.put(key("", "namespaces", "", ns), object);
        }
        store
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The current resourceVersion as it moves on.
    pub fn rv_signal(&self) -> watch::Receiver<u64> {
        self.rv_signal.subscribe()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv_signal.send_replace(self.rv);
        self.rv
    }

    pub fn get(&self, key: &StoreKey) -> Option<&Value> {
        self.objects.get(key)
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&key("", "namespaces", "", namespace))
    }

    /// Objects of a type, ordered by namespace then name; `namespace` None means all.
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let start = key(group, plural, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The objects as they were at `rv` (an exact list), rebuilt by undoing newer changes.
    pub fn list_at(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        rv: u64,
    ) -> ApiResult<Vec<Value>> {
        if rv < self.oldest {
            return Err(ApiError::list_too_old());
        }
        if rv > self.rv {
            return Err(ApiError::too_large_resource_version(rv, self.rv));
        }
        let mut objects: BTreeMap<StoreKey, Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for change in self.history.iter().rev().take_while(|c| c.rv > rv) {
            let k = &change.key;
            if k.0 != group || k.1 != plural || namespace.is_some_and(|ns| k.2 != ns) {
                continue;
            }
            match (&change.kind, &change.old) {
                (ChangeKind::Added, _) => {
                    objects.remove(k);
                }
                (_, Some(old)) => {
                    objects.insert(k.clone(), old.clone());
                }
                (_, None) => {}
            }
        }
        Ok(objects.into_values().collect())
    }

    /// Stores an object (create or update), giving it the next resourceVersion; returns it.
    pub fn put(&mut self, key: StoreKey, mut object: Value) -> Value {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let old = self.objects.insert(key.clone(), object.clone());
        let kind = if old.is_some() { ChangeKind::Modified } else { ChangeKind::Added };
        self.record(Change { rv, kind, key, object: object.clone(), old });
        object
    }

    /// Removes an object; returns its last state with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &StoreKey) -> Option<Value> {
        let old = self.objects.remove(key)?;
        let rv = self.next_rv();
        let mut object = old.clone();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(Change {
            rv,
            kind: ChangeKind::Deleted,
            key: key.clone(),
            object: object.clone(),
            old: Some(old),
        });
        Some(object)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        let (group, plural, namespace) = (&change.key.0, &change.key.1, &change.key.2);
        self.watchers.retain(|w| {
            if w.group != *group
                || w.plural != *plural
                || w.namespace.as_ref().is_some_and(|ns| ns != namespace)
            {
                return !w.tx.is_closed();
            }
            w.tx.send(Arc::clone(&change)).is_ok()
        });
        self.history.push_back(change);
        while self.history.len() > self.max_history {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest = dropped.rv;
            }
        }
    }

    /// Changes of a type after `rv`, for a watch that starts there.
    pub fn changes_since(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        rv: u64,
    ) -> ApiResult<Vec<Arc<Change>>> {
        if rv < self.oldest {
            return Err(ApiError::too_old(rv, self.oldest + 1));
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.rv > rv)
            .filter(|c| c.key.0 == group && c.key.1 == plural && namespace.is_none_or(|ns| c.key.2 == ns))
            .cloned()
            .collect())
    }

    /// Registers a live watcher: every later change of the type reaches the receiver.
    pub fn subscribe(
        &mut self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> mpsc::UnboundedReceiver<Arc<Change>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(Watcher {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
            tx,
        });
        rx
    }

    /// Ends every watch of a type (its CRD went away) or, with None, every watch.
    pub fn close_watchers(&mut self, of: Option<(&str, &str)>) {
        match of {
            Some((group, plural)) => self.watchers.retain(|w| w.group != group || w.plural != plural),
            None => self.watchers.clear(),
        }
    }

    /// Moves the resourceVersion on without changing an object here, as writes to the kinds a
    /// real cluster has and this server does not (leases, endpoints) do.
    pub fn advance(&mut self) {
        self.next_rv();
    }

    /// Forgets the history: watching or exact-listing from an older resourceVersion answers 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }
}

pub(crate) fn key(group: &str, plural: &str, namespace: &str, name: &str) -> StoreKey {
    (group.to_owned(), plural.to_owned(), namespace.to_owned(), name.to_owned())
}
