//! What one render sees and records: the fetched values, and which dependencies it used or lacked.
//!
//! Helpers are synchronous and handlebars owns their call, so the store and the recorder live in
//! a thread-local for the duration of one `render` call (set and cleared by `Scope::enter`).

use crate::dependency::Dependency;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Fetched values by dependency; `None` = fetched and does not exist. Absent from the map =
/// not fetched yet.
pub type Store = HashMap<Dependency, Option<Value>>;

/// Why a render could not complete.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Missing {
    /// Not fetched yet.
    Pending(Dependency),
    /// Fetched and absent where the helper needs it (`key`, `file`, `node` by name).
    Absent(Dependency),
    /// Fetched and empty where the helper refuses empty (`safeLs`, `safeTree`).
    Empty(Dependency),
}

impl Missing {
    pub fn dependency(&self) -> &Dependency {
        match self {
            Missing::Pending(d) | Missing::Absent(d) | Missing::Empty(d) => d,
        }
    }
}

/// What a helper gets back for a dependency.
pub enum Lookup {
    Pending,
    Absent,
    Present(Value),
}

struct State {
    store: Arc<Store>,
    sandbox: Option<PathBuf>,
    used: Vec<Dependency>,
    /// `used` as a set: a template calling 1,000 helpers must not cost 1,000² comparisons.
    seen: std::collections::HashSet<Dependency>,
    missing: Vec<Missing>,
    missing_seen: std::collections::HashSet<Missing>,
}

thread_local! {
    static CURRENT: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// What a finished render recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    pub used: Vec<Dependency>,
    pub missing: Vec<Missing>,
}

/// The render scope of the current thread; dropping it clears the thread-local.
pub struct Scope(());

impl Scope {
    pub fn enter(store: Arc<Store>, sandbox: Option<PathBuf>) -> Scope {
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(State {
                store,
                sandbox,
                used: Vec::new(),
                seen: Default::default(),
                missing: Vec::new(),
                missing_seen: Default::default(),
            })
        });
        Scope(())
    }

    pub fn finish(self) -> Recorded {
        CURRENT.with(|c| match c.borrow_mut().take() {
            Some(s) => Recorded {
                used: s.used,
                missing: s.missing,
            },
            None => Recorded::default(),
        })
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// Records `dep` as used and returns its value; a pending one is recorded as missing.
/// Outside a render (a helper called directly in a unit test) everything is pending.
pub fn lookup(dep: Dependency) -> Lookup {
    CURRENT.with(|c| {
        let mut guard = c.borrow_mut();
        let Some(state) = guard.as_mut() else {
            return Lookup::Pending;
        };
        let found = state.store.get(&dep).cloned();
        if state.seen.insert(dep.clone()) {
            state.used.push(dep.clone());
        }
        match found {
            None => {
                push_missing(state, Missing::Pending(dep));
                Lookup::Pending
            }
            Some(None) => Lookup::Absent,
            Some(Some(v)) => Lookup::Present(v),
        }
    })
}

/// Marks the render incomplete because of `m` (e.g. a `key` that does not exist).
pub fn mark_missing(m: Missing) {
    CURRENT.with(|c| {
        if let Some(state) = c.borrow_mut().as_mut() {
            push_missing(state, m);
        }
    })
}

fn push_missing(state: &mut State, m: Missing) {
    if state.missing_seen.insert(m.clone()) {
        state.missing.push(m);
    }
}

/// The template's `sandbox_path`, if any.
pub fn sandbox() -> Option<PathBuf> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|s| s.sandbox.clone()))
}
