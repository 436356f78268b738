//! Names from Python (metric names, data keys) as shared event keys.
//!
//! An event key is `Cow<'static, str>`: a borrowed key costs nothing to make, copy and free,
//! while an owned one is one allocation per key per event, made on the training thread and
//! freed on the bus thread, which a profile of the storage workload put at about a quarter of
//! its time. Training code repeats a handful of names millions of times, so the first
//! [`MAX_KEYS`] distinct short names are kept for the life of the process (at most
//! `MAX_KEYS * MAX_LEN` bytes, 256 KiB) and every later use borrows them. Longer names and names
//! past the cap stay owned: correct, just not shared.
//!
//! Finding a Python string's kept name costs, under the abi3-py39 API, a UTF-8 copy into a new
//! bytes object, a lock and a hash, on every key of every event. [`py_key`] skips all three for
//! string objects it has seen: the name literals of a training loop are the same objects on
//! every call, so their addresses are remembered with their kept names (a reference to each is
//! held for the life of the process, so an address is never reused by another string).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

use obs_core::Key;
use pyo3::prelude::*;
use pyo3::types::PyString;

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

/// String objects remembered at most, per thread.
const MAX_SEEN: usize = 1024;

/// Hashes an address: objects are 16-byte aligned, a multiply spreads the rest.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

thread_local! {
    static SEEN: RefCell<HashMap<usize, &'static str, BuildHasherDefault<AddressHasher>>> =
        RefCell::new(HashMap::default());
}

/// A Python string as an event key: [`key`] of its text, remembered by the object's address.
pub(crate) fn py_key(s: &Bound<'_, PyString>) -> PyResult<Key> {
    let address = s.as_ptr() as usize;
    if let Some(shared) = SEEN.with_borrow(|seen| seen.get(&address).copied()) {
        return Ok(Key::Borrowed(shared));
    }
    let key = key(&s.to_cow()?);
    if let Key::Borrowed(shared) = key {
        SEEN.with_borrow_mut(|seen| {
            if seen.len() < MAX_SEEN {
                // Held forever: while the object lives, its address names this string only.
                std::mem::forget(s.clone().unbind());
                seen.insert(address, shared);
            }
        });
    }
    Ok(key)
}
