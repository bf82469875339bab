//! Hashing for state whose contents (not only its speed) depend on hash values: sampled
//! sets, admission filters, record keys. A leaf: nothing of the system.

use std::hash::Hash;

/// A hash that is the same on every run and architecture.
#[inline]
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(value)
}
