//! The strings of the window state, each stored once.
//!
//! Every map of the engine's state is keyed by resource ids, categories, workloads and
//! rule ids, and the same resource id comes back in each open window, each rule's hits
//! and each open violation. The engine keeps one copy of each distinct string here and
//! a [`Sym`] (4 bytes) wherever it is used.
//!
//! A string no state refers to any more is freed by [`Interner::sweep`], given the set
//! of symbols still in use: the engine sweeps when windows close, once the interner has
//! grown by an eighth since the last sweep, so it holds at most an eighth more strings
//! than the state refers to, however many distinct values a long run sees.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::{Error, Result};

/// An interned string: an index into its [`Interner`]. Equal symbols are equal strings;
/// their order is not the strings' order (compare [`Interner::get`] for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Sym(u32);

impl Sym {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// Distinct strings, each with its [`Sym`].
#[derive(Debug, Default)]
pub(crate) struct Interner {
    /// Symbols, hashed by their string.
    table: HashTable<Sym>,
    /// The string of each symbol (by [`Sym::index`]); `None` for a freed slot. Shared
    /// with the output rows that name it.
    values: Vec<Option<Arc<str>>>,
    /// Freed slots, reused first.
    free: Vec<Sym>,
    /// foldhash, seeded at random per interner: resource ids come from the input, so
    /// the seed keeps an attacker from choosing colliding ids, and it hashes a long id in
    /// a fraction of the time SipHash takes.
    hasher: hashbrown::DefaultHashBuilder,
    /// Strings held after the last sweep.
    swept: usize,
}

impl Interner {
    /// The symbol of `s`, adding it if it is new.
    pub(crate) fn intern(&mut self, s: &str) -> Result<Sym> {
        let hash = self.hasher.hash_one(s);
        let values = &self.values;
        if let Some(sym) = self.table.find(hash, |sym| value(values, *sym) == s) {
            return Ok(*sym);
        }
        let sym = match self.free.pop() {
            Some(sym) => {
                self.values[sym.index()] = Some(s.into());
                sym
            }
            None => {
                let sym = Sym(
                    u32::try_from(self.values.len()).map_err(|_| Error::Internal {
                        message: "more than 2^32 distinct strings in the window state".into(),
                    })?,
                );
                self.values.push(Some(s.into()));
                sym
            }
        };
        let (values, hasher) = (&self.values, &self.hasher);
        self.table
            .insert_unique(hash, sym, |sym| hasher.hash_one(value(values, *sym)));
        Ok(sym)
    }

    /// The string of `sym`.
    pub(crate) fn get(&self, sym: Sym) -> &str {
        value(&self.values, sym)
    }

    /// The string of `sym`, shared.
    pub(crate) fn shared(&self, sym: Sym) -> Arc<str> {
        match self.values.get(sym.index()) {
            Some(Some(s)) => Arc::clone(s),
            _ => Arc::from(""),
        }
    }

    /// [`shared`](Self::shared) of `sym`, if any.
    pub(crate) fn shared_opt(&self, sym: Option<Sym>) -> Option<Arc<str>> {
        sym.map(|s| self.shared(s))
    }

    /// The string of `sym`, if any.
    pub(crate) fn get_opt(&self, sym: Option<Sym>) -> Option<&str> {
        sym.map(|s| self.get(s))
    }

    /// Strings held now.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether enough strings were added since the last sweep to sweep again: an eighth
    /// more than it kept.
    pub(crate) fn wants_sweep(&self) -> bool {
        self.len() > self.swept + self.swept / 8
    }

    /// An empty set of symbols in use, for [`sweep`](Self::sweep).
    pub(crate) fn marks(&self) -> Marks {
        Marks(vec![0; self.values.len().div_ceil(64)])
    }

    /// Frees every string whose symbol is not in `used`.
    pub(crate) fn sweep(&mut self, used: &Marks) {
        for (i, slot) in self.values.iter_mut().enumerate() {
            // `intern` keeps the number of slots within u32.
            let sym = Sym(i as u32);
            if used.has(sym) {
                continue;
            }
            if let Some(s) = slot.take() {
                let hash = self.hasher.hash_one(&*s);
                if let Ok(entry) = self.table.find_entry(hash, |x| *x == sym) {
                    entry.remove();
                }
                self.free.push(sym);
            }
        }
        self.swept = self.len();
    }
}

/// A set of symbols, one bit each.
#[derive(Debug)]
pub(crate) struct Marks(Vec<u64>);

impl Marks {
    /// Adds `sym`.
    pub(crate) fn mark(&mut self, sym: Sym) {
        let i = sym.index();
        if let Some(bits) = self.0.get_mut(i / 64) {
            *bits |= 1 << (i % 64);
        }
    }

    /// Adds `sym` if there is one.
    pub(crate) fn mark_opt(&mut self, sym: Option<Sym>) {
        if let Some(s) = sym {
            self.mark(s);
        }
    }

    fn has(&self, sym: Sym) -> bool {
        let i = sym.index();
        self.0
            .get(i / 64)
            .is_some_and(|bits| bits & (1 << (i % 64)) != 0)
    }
}

/// The string of `sym` (empty for a freed slot: no state refers to one).
fn value(values: &[Option<Arc<str>>], sym: Sym) -> &str {
    values
        .get(sym.index())
        .and_then(|v| v.as_deref())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_a_symbol_and_unused_ones_are_freed_and_reused() {
        let mut names = Interner::default();
        let a = names.intern("vm-1").unwrap();
        let b = names.intern("vm-2").unwrap();
        assert_eq!(names.intern("vm-1").unwrap(), a);
        assert_ne!(a, b);
        assert_eq!((names.get(a), names.get(b)), ("vm-1", "vm-2"));

        let mut used = names.marks();
        used.mark(b);
        names.sweep(&used);
        assert_eq!(names.len(), 1);
        assert_eq!(names.get(b), "vm-2");
        let c = names.intern("vm-3").unwrap();
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(names.get(c), "vm-3");
        assert_eq!(names.intern("vm-2").unwrap(), b);
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_sweep_is_wanted_after_an_eighth_more_strings() {
        let mut names = Interner::default();
        assert!(!names.wants_sweep());
        let syms: Vec<Sym> = (0..16)
            .map(|i| names.intern(&i.to_string()).unwrap())
            .collect();
        assert!(names.wants_sweep());
        let mut used = names.marks();
        syms.iter().for_each(|s| used.mark(*s));
        names.sweep(&used);
        assert!(!names.wants_sweep());
        names.intern("16").unwrap();
        names.intern("17").unwrap();
        assert!(!names.wants_sweep(), "18 strings, 16 kept at the sweep");
        names.intern("18").unwrap();
        assert!(names.wants_sweep());
    }
}
