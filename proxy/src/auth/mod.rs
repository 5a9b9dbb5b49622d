//! From a request to a target: token extraction, verification, decryption, target policy, cache.

pub mod keys;
pub mod mint;
