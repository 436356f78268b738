//! The `data` payload of an event: JSON-like values that also hold NaN and infinities.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A key of [`Data`]. Static keys (`"loss"`) cost no allocation.
pub type Key = Cow<'static, str>;

/// A JSON-like value that, unlike `serde_json::Value`, can hold non-finite floats.
///
/// Non-finite floats serialise as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` so every
/// NDJSON line stays valid JSON; when parsing, those three strings become floats again. Integers
/// that fit in `i64` are always [`Value::Int`], so a value survives a round trip unchanged.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer larger than `i64::MAX`.
    UInt(u64),
    /// A float, possibly NaN or infinite.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A nested map.
    Map(Data),
}

impl Value {
    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            _ => None,
        }
    }

    /// The value as an `i64`, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(v) => Some(v),
            Value::UInt(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a `u64`, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(v) => u64::try_from(v).ok(),
            Value::UInt(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as a nested map, if it is one.
    pub fn as_map(&self) -> Option<&Data> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value as a list, if it is one.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Equality where NaN equals NaN, so that a parsed event compares equal to the one written.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Data> for Value {
    fn from(v: Data) -> Self {
        Value::Map(v)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value> + Clone> From<&[T]> for Value {
    fn from(v: &[T]) -> Self {
        Value::List(v.iter().cloned().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Converts a `serde_json::Value` (which is always finite) into a [`Value`].
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::from(s),
            serde_json::Value::Array(a) => Value::List(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (Key::Owned(k), Value::from(v))).collect())
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => serialize_f64(*f, s),
            Value::Str(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => m.serialize(s),
        }
    }
}

/// Serialises a float, writing non-finite values as `"NaN"`, `"Infinity"` or `"-Infinity"`.
pub fn serialize_f64<S: Serializer>(f: f64, s: S) -> Result<S::Ok, S::Error> {
    if f.is_finite() {
        s.serialize_f64(f)
    } else if f.is_nan() {
        s.serialize_str("NaN")
    } else if f > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

fn non_finite_from_str(v: &str) -> Option<f64> {
    match v {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(non_finite_from_str(v).map_or_else(|| Value::Str(v.to_owned()), Value::Float))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(match non_finite_from_str(&v) {
            Some(f) => Value::Float(f),
            None => Value::Str(v),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        DataVisitor.visit_map(map).map(Value::Map)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// An insertion-ordered map from keys to [`Value`]s: the `data` object of an event.
///
/// Small by design (a `Vec` of pairs): events carry a handful of fields, and keeping the order
/// the caller gave makes NDJSON lines stable and readable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Data {
    entries: Vec<(Key, Value)>,
}

impl Data {
    /// An empty map.
    pub const fn new() -> Self {
        Data { entries: Vec::new() }
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Data { entries: Vec::with_capacity(n) }
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key in place.
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Builder form of [`Data::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key` as a float, if present and numeric.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// Follows a path of keys through nested maps: `data.path(&["metrics", "loss"])`.
    pub fn path(&self, keys: &[&str]) -> Option<&Value> {
        let (last, init) = keys.split_last()?;
        let mut map = self;
        for k in init {
            map = map.get(k)?.as_map()?;
        }
        map.get(last)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry whose key the caller knows is not present yet.
    pub(crate) fn push_distinct(&mut self, key: Key, value: Value) {
        debug_assert!(self.get(&key).is_none());
        self.entries.push((key, value));
    }

    /// The value of `key` for changing in place, if present.
    pub(crate) fn value_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes every entry, keeping the room allocated.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries with their keys as stored (borrowed or owned).
    pub(crate) fn entries(&self) -> &[(Key, Value)] {
        &self.entries
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Data {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut d = Data::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

impl<'a> IntoIterator for &'a Data {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Key, Value)>,
        fn(&'a (Key, Value)) -> (&'a str, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E>(self) -> Result<Data, E> {
        Ok(Data::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut d = Data::with_capacity(map.size_hint().unwrap_or(8).min(256));
        while let Some(KeyDe(k)) = map.next_key::<KeyDe>()? {
            let v = map.next_value::<Value>()?;
            // A duplicated key keeps the last value, as serde_json does.
            d.insert(k, v);
        }
        Ok(d)
    }
}

/// A map key read from JSON. Keys Observatory itself writes are interned as `&'static str`, so
/// reading logs back allocates only for values and for keys users chose.
struct KeyDe(Key);

/// Keys written by Observatory's own events; checked before allocating a key.
const KNOWN_KEYS: &[&str] = &[
    "metrics",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "duration_s",
    "count",
    "mean",
    "std",
    "min",
    "max",
    "l2_norm",
    "zeros_pct",
    "nan_count",
    "inf_count",
    "activation",
    "saturation_pct",
    "dead_units",
    "units",
    "dead_units_pct",
    "shape",
    "grad_norm",
    "update_norm",
    "rule_name",
    "trigger",
    "diagnosis",
    "recommendations",
    "total_epochs",
    "model_info",
    "summary",
    "non_finite",
    "value",
    "threshold",
    "repeats",
    "fingerprint",
    "hyperparameters",
];

fn intern(k: &str) -> Key {
    match KNOWN_KEYS.iter().find(|known| **known == k) {
        Some(known) => Key::Borrowed(known),
        None => Key::Owned(k.to_owned()),
    }
}

impl<'de> Deserialize<'de> for KeyDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyDe;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyDe, E> {
                Ok(KeyDe(intern(v)))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyDe, E> {
                Ok(KeyDe(match intern(&v) {
                    Key::Borrowed(k) => Key::Borrowed(k),
                    Key::Owned(_) => Key::Owned(v),
                }))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

/// Builds a [`Data`] map: `data! { "loss" => 0.3, "accuracy" => 0.9 }`.
#[macro_export]
macro_rules! data {
    () => { $crate::Data::new() };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut d = $crate::Data::new();
        $( d.insert($key, $value); )+
        d
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_floats_are_strings_and_come_back() {
        let d = crate::data! { "a" => f64::NAN, "b" => f64::INFINITY, "c" => f32::NEG_INFINITY, "d" => 1.5 };
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(s, r#"{"a":"NaN","b":"Infinity","c":"-Infinity","d":1.5}"#);
        let back: Data = serde_json::from_str(&s).unwrap();
        assert_eq!(back, d);
        assert!(back.get_f64("a").unwrap().is_nan());
    }

    #[test]
    fn integers_keep_their_variant_through_json() {
        let d = crate::data! { "n" => 5u64, "big" => u64::MAX, "neg" => -3i32, "list" => vec![1.0, 2.5] };
        let back: Data = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.get("big"), Some(&Value::UInt(u64::MAX)));
    }

    #[test]
    fn insert_replaces_in_place_and_path_walks_maps() {
        let mut d = crate::data! { "x" => 1, "y" => 2 };
        d.insert("x", 3);
        assert_eq!(d.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["x", "y"]);
        let outer = crate::data! { "metrics" => crate::data! { "loss" => 0.5 } };
        assert_eq!(outer.path(&["metrics", "loss"]).and_then(Value::as_f64), Some(0.5));
        assert_eq!(outer.path(&["metrics", "nope"]), None);
        assert_eq!(outer.path(&[]), None);
    }
}
