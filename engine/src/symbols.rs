//! The symbol table: names <-> dense [`SymbolId`]s, fixed for the life of a run (ids are never reused).

use crate::records::SymbolId;
use std::collections::HashMap;

/// Longest symbol name accepted (bytes).
pub const MAX_SYMBOL_LEN: usize = 32;

/// Dense id <-> name mapping. Ids are assigned in insertion order; a backtest inserts symbols
/// sorted by name so ids (and therefore shard assignment and merge order) do not depend on the
/// order files were found on disk.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    names: Vec<String>,
    ids: HashMap<String, SymbolId>,
}

/// Why a symbol name is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SymbolError {
    /// Empty name.
    #[error("symbol name is empty")]
    Empty,
    /// Too long.
    #[error("symbol {0:?} is longer than {MAX_SYMBOL_LEN} bytes")]
    TooLong(String),
    /// Characters outside `A-Z a-z 0-9 . _ - / ^ =`.
    #[error("symbol {0:?} has characters outside A-Z a-z 0-9 . _ - / ^ =")]
    BadChar(String),
}

/// Check a symbol name: 1..=32 bytes of `A-Z a-z 0-9 . _ - / ^ =`.
pub fn check_symbol(name: &str) -> Result<(), SymbolError> {
    if name.is_empty() {
        return Err(SymbolError::Empty);
    }
    if name.len() > MAX_SYMBOL_LEN {
        return Err(SymbolError::TooLong(name.to_string()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/^=".contains(&b)) {
        return Err(SymbolError::BadChar(name.to_string()));
    }
    Ok(())
}

impl SymbolTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Id of `name`, inserting it if new.
    pub fn intern(&mut self, name: &str) -> Result<SymbolId, SymbolError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        check_symbol(name)?;
        let id = SymbolId(u32::try_from(self.names.len()).expect("fewer than 4G symbols"));
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Id of `name` if known.
    pub fn get(&self, name: &str) -> Option<SymbolId> {
        self.ids.get(name).copied()
    }

    /// Name of `id` (`"?"` for an unknown id).
    pub fn name(&self, id: SymbolId) -> &str {
        self.names.get(id.0 as usize).map_or("?", String::as_str)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable() {
        let mut t = SymbolTable::new();
        let a = t.intern("AAPL").unwrap();
        let b = t.intern("MSFT").unwrap();
        assert_eq!(t.intern("AAPL").unwrap(), a);
        assert_eq!((a, b), (SymbolId(0), SymbolId(1)));
        assert_eq!(t.name(b), "MSFT");
        assert_eq!(t.get("X"), None);
        assert_eq!(t.intern(""), Err(SymbolError::Empty));
        assert!(matches!(t.intern("A B"), Err(SymbolError::BadChar(_))));
        assert!(matches!(t.intern(&"A".repeat(33)), Err(SymbolError::TooLong(_))));
        assert_eq!(t.len(), 2);
    }
}
