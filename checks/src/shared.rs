//! [`Shared`]: a value the checker copies and hashes many times but changes
//! never, behind an `Arc` with its hash computed once.
//!
//! stateright clones the whole system state for every successor and hashes it
//! for every fingerprint: every message in flight, every actor's state and
//! every actor's storage, each time. Profiled under callgrind on
//! `--clients 1 --purchases 2`, deep copies (strings in messages and
//! storage) were a third of all instructions and hashing another quarter.
//! Behind a `Shared`, a copy is a reference count and a hash is one `u64`
//! written; equality and hashing still mean "same contents", so the state
//! space, and every pinned count, is the same.

use serde::{Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable value, shared, with its content hash cached.
pub struct Shared<T> {
    hash: u64,
    value: Arc<T>,
}

impl<T: Hash> Shared<T> {
    /// Wraps `value`, hashing it once.
    pub fn new(value: T) -> Self {
        // aHash with fixed seeds (as stateright's own fingerprints): the same
        // contents hash the same in every run and thread.
        let hash = ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(&value);
        Shared {
            hash,
            value: Arc::new(value),
        }
    }
}

impl<T: Clone> Shared<T> {
    /// The value itself (a copy only if it is shared).
    pub fn into_inner(self) -> T {
        Arc::unwrap_or_clone(self.value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            hash: self.hash,
            value: Arc::clone(&self.value),
        }
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.value, &other.value) || self.value == other.value)
    }
}

impl<T: Eq> Eq for Shared<T> {}

/// Ordered by contents, as the plain values are (stateright orders actions).
impl<T: Ord> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of<T: Hash>(x: &T) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_contents_are_equal_and_hash_alike_whatever_the_allocation() {
        let a = Shared::new(String::from("alice"));
        let b = Shared::new(String::from("alice"));
        let c = Shared::new(String::from("bob"));
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_ne!(a, c);
        assert_ne!(hash_of(&a), hash_of(&c));
        assert_eq!(a.clone().into_inner(), "alice");
    }
}
