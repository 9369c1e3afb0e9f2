//! Swapping a running server's rules: one shared slot and an epoch counter. A worker compares
//! the counter with the one it last saw before each request (one atomic load) and takes the
//! lock only when the rules have changed.

use super::SiteRules;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Replaces the rules of a running server from any thread: requests parsed after
/// [`RulesHandle::replace`] returns are answered by the new rules, on every connection, and
/// no connection is dropped. Get one from [`Server::rules_handle`](crate::Server::rules_handle)
/// or [`RunningServer::rules_handle`](crate::RunningServer::rules_handle).
#[derive(Clone)]
pub struct RulesHandle(pub(crate) Arc<RulesSlot>);

impl RulesHandle {
    /// Puts `rules` in place of the current ones. Each worker drops its cached files (their
    /// header lines came from the old rules) as it picks them up.
    pub fn replace(&self, rules: SiteRules) {
        self.0.replace(rules);
    }
}

/// The rules in force, shared by every worker.
pub(crate) struct RulesSlot {
    epoch: AtomicU64,
    current: Mutex<Arc<SiteRules>>,
}

impl RulesSlot {
    /// A slot holding `rules` at epoch 0.
    pub(crate) fn new(rules: SiteRules) -> RulesSlot {
        RulesSlot {
            epoch: AtomicU64::new(0),
            current: Mutex::new(Arc::new(rules)),
        }
    }

    /// How many times the rules were replaced.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The rules in force and their epoch.
    pub(crate) fn current(&self) -> (u64, Arc<SiteRules>) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (self.epoch.load(Ordering::Acquire), current.clone())
    }

    fn replace(&self, rules: SiteRules) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(rules);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}
