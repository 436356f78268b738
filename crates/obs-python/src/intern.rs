//! Names from Python (metric names, data keys) as shared event keys.
//!
//! An event key is `Cow<'static, str>`: a borrowed key costs nothing to make, copy and free,
//! while an owned one is one allocation per key per event, made on the training thread and
//! freed on the bus thread, which a profile of the storage workload put at about a quarter of
//! its time. Training code repeats a handful of names millions of times, so the first
//! [`MAX_KEYS`] distinct short names are kept for the life of the process (at most
//! `MAX_KEYS * MAX_LEN` bytes, 256 KiB) and every later use borrows them. Longer names and names
//! past the cap stay owned: correct, just not shared.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use obs_core::Key;

/// Distinct names kept at most.
const MAX_KEYS: usize = 4096;
/// Longest name kept, in bytes.
const MAX_LEN: usize = 64;

/// `name` as an event key, shared when it is (or can become) one of the kept names.
pub(crate) fn key(name: &str) -> Key {
    if name.len() > MAX_LEN {
        return Key::Owned(name.to_owned());
    }
    static KEPT: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let kept = KEPT.get_or_init(|| Mutex::new(HashSet::new()));
    // The set is only ever inserted into whole, so a panic elsewhere cannot leave it torn.
    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&shared) = kept.get(name) {
        return Key::Borrowed(shared);
    }
    if kept.len() >= MAX_KEYS {
        return Key::Owned(name.to_owned());
    }
    let shared: &'static str = Box::leak(name.to_owned().into_boxed_str());
    kept.insert(shared);
    Key::Borrowed(shared)
}
