//! The feed's symbol map: wire names to the run's [`SymbolId`]s, filled by the universe.

use engine::records::SymbolId;
use engine::symbols::{SymbolError, SymbolTable, check_symbol};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: symbol names are short and come from the data vendor, so a fast non-keyed hash is
/// the right trade (SipHash's DoS resistance buys nothing here and costs a lookup's worth of time).
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Names the feed may deliver, with the id each resolves to. The universe manager inserts a
/// symbol before subscribing to it and removes it after unsubscribing; a message for a name not
/// in the map is counted (`unknown_symbols`) and dropped.
#[derive(Clone, Debug, Default)]
pub struct SymbolMap {
    ids: HashMap<Box<str>, SymbolId, BuildHasherDefault<Fnv>>,
}

impl SymbolMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every symbol of a run's table, under its own name.
    pub fn from_table(t: &SymbolTable) -> Self {
        let mut m = SymbolMap::new();
        for (i, name) in t.names().iter().enumerate() {
            m.ids.insert(name.as_str().into(), SymbolId(i as u32));
        }
        m
    }

    /// Map `name` to `id` (replacing any earlier id). The name must pass
    /// [`engine::symbols::check_symbol`].
    pub fn insert(&mut self, name: &str, id: SymbolId) -> Result<(), SymbolError> {
        check_symbol(name)?;
        self.ids.insert(name.into(), id);
        Ok(())
    }

    /// Forget `name`; returns its id if it was mapped.
    pub fn remove(&mut self, name: &str) -> Option<SymbolId> {
        self.ids.remove(name)
    }

    /// The id of `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<SymbolId> {
        self.ids.get(name).copied()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The name mapped to `id` (a scan of the map: for log lines, never the hot path).
    pub fn name_of(&self, id: SymbolId) -> Option<&str> {
        self.ids.iter().find(|(_, v)| **v == id).map(|(k, _)| &**k)
    }

    /// Every mapped name, sorted (for subscribe messages).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.ids.keys().map(|k| &**k).collect();
        v.sort_unstable();
        v
    }
}
