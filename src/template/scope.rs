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

/// The hasher of the maps a render looks dependencies up in (thousands of lookups a render):
/// foldhash, seeded per process, instead of the standard `SipHash`.
pub type Hasher = foldhash::fast::RandomState;

/// Dependencies in the order a render first used them.
pub type DepSet = indexmap::IndexSet<Dependency, Hasher>;

/// Fetched values by dependency, held where handlebars reads them without copying: the values
/// are the elements of one JSON array, the root of the render's handlebars context, and a helper
/// returning a stored value hands handlebars its path in that array (`service` over 10,000
/// instances is then iterated in place, not deep-copied per block and per element).
#[derive(Debug, Clone)]
pub struct Store {
    context: handlebars::Context,
    slots: HashMap<Dependency, Slot, Hasher>,
    /// Array elements left by removed dependencies, reused before the array grows.
    free: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Fetched; its value is element `n` of the array.
    Value(usize),
    /// Fetched and does not exist.
    Absent,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            context: handlebars::Context::from(Value::Array(Vec::new())),
            slots: HashMap::default(),
            free: Vec::new(),
        }
    }

    fn values(&mut self) -> &mut Vec<Value> {
        if !self.context.data().is_array() {
            *self.context.data_mut() = Value::Array(Vec::new());
        }
        match self.context.data_mut() {
            Value::Array(list) => list,
            _ => unreachable!("the store's root is an array"),
        }
    }

    /// Sets `dep`'s value (`None` = fetched and does not exist).
    pub fn insert(&mut self, dep: Dependency, value: Option<Value>) {
        let old = self.slots.get(&dep).copied();
        let slot = match (value, old) {
            (None, Some(Slot::Value(n))) => {
                self.values()[n] = Value::Null;
                self.free.push(n);
                Slot::Absent
            }
            (None, _) => Slot::Absent,
            (Some(v), Some(Slot::Value(n))) => {
                self.values()[n] = v;
                Slot::Value(n)
            }
            (Some(v), _) => {
                if let Some(n) = self.free.pop() {
                    self.values()[n] = v;
                    Slot::Value(n)
                } else {
                    let list = self.values();
                    list.push(v);
                    Slot::Value(list.len() - 1)
                }
            }
        };
        self.slots.insert(dep, slot);
    }

    /// `None`: not fetched; `Some(None)`: fetched and does not exist.
    pub fn get(&self, dep: &Dependency) -> Option<Option<&Value>> {
        self.slots.get(dep).map(|slot| match slot {
            Slot::Value(n) => self.context.data().get(*n),
            Slot::Absent => None,
        })
    }

    /// Forgets `dep` (no template uses it any more).
    pub fn remove(&mut self, dep: &Dependency) {
        if let Some(Slot::Value(n)) = self.slots.remove(dep) {
            self.values()[n] = Value::Null;
            self.free.push(n);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The handlebars context a render reads stored values from.
    pub fn context(&self) -> &handlebars::Context {
        &self.context
    }
}

/// A stored value, found by a helper: it stays in the store, which this keeps alive.
#[derive(Clone)]
pub struct Stored {
    store: Arc<Store>,
    index: usize,
}

impl Stored {
    pub fn value(&self) -> &Value {
        self.store
            .context
            .data()
            .get(self.index)
            .unwrap_or(&Value::Null)
    }

    /// The value inside `context` when that is this store's (the render's root context):
    /// handlebars then reads it in place by its path. `None` for any other context (a partial
    /// called with a context of its own).
    pub fn in_context<'c>(&self, context: &'c handlebars::Context) -> Option<(&'c Value, usize)> {
        std::ptr::eq(context, &self.store.context)
            .then(|| context.data().get(self.index).map(|v| (v, self.index)))
            .flatten()
    }
}

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
    Present(Stored),
}

struct State {
    store: Arc<Store>,
    sandbox: Option<PathBuf>,
    used: DepSet,
    missing: indexmap::IndexSet<Missing, Hasher>,
}

thread_local! {
    static CURRENT: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// What a finished render recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    pub used: DepSet,
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
                used: DepSet::default(),
                missing: indexmap::IndexSet::default(),
            });
        });
        Scope(())
    }

    pub fn finish(self) -> Recorded {
        CURRENT.with(|c| match c.borrow_mut().take() {
            Some(s) => Recorded {
                used: s.used,
                missing: s.missing.into_iter().collect(),
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
        let Some(slot) = state.store.slots.get(&dep).copied() else {
            state.used.insert(dep.clone());
            state.missing.insert(Missing::Pending(dep));
            return Lookup::Pending;
        };
        // Moved in, not copied (one already recorded is dropped).
        state.used.insert(dep);
        match slot {
            Slot::Absent => Lookup::Absent,
            Slot::Value(index) => Lookup::Present(Stored {
                store: state.store.clone(),
                index,
            }),
        }
    })
}

/// Marks the render incomplete because of `m` (e.g. a `key` that does not exist).
pub fn mark_missing(m: Missing) {
    CURRENT.with(|c| {
        if let Some(state) = c.borrow_mut().as_mut() {
            state.missing.insert(m);
        }
    });
}

/// The template's `sandbox_path`, if any.
pub fn sandbox() -> Option<PathBuf> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|s| s.sandbox.clone()))
}
