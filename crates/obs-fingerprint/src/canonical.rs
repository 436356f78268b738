//! Canonical JSON of a model description, so its hash is the same on every platform and for
//! every insertion order of the keys.

use std::fmt::Write as _;

use obs_core::{Data, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex::hex;

/// Integral floats below this magnitude are written as integers (2^53: every integer up to
/// here is exactly representable as `f64`).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// The canonical JSON text of `data`, the input of the model hash.
///
/// - Object keys are sorted by their UTF-8 bytes; there is no whitespace.
/// - Strings are escaped as `serde_json` does (`"`, `\`, control characters; nothing else).
/// - Integers are written in decimal. A float with an integral value below 2^53 in magnitude is
///   written as that integer (`64.0` → `64`, `-0.0` → `0`), so a description whose numbers
///   went through a float on one side and an integer on the other hashes the same.
/// - Other finite floats use the shortest text that reads back to the same `f64`, with an
///   exponent when Rust's `{:?}` uses one (`0.1`, `1e-7`, `1.5e300`): Rust formats floats
///   in software, so the text is the same on every platform.
/// - NaN and infinities are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, as in events.
///
/// # Examples
/// ```
/// use obs_core::data;
/// use obs_fingerprint::canonical_json;
///
/// let a = data! { "name" => "mlp", "layers" => 3, "lr" => 0.5 };
/// assert_eq!(canonical_json(&a), r#"{"layers":3,"lr":0.5,"name":"mlp"}"#);
/// ```
pub fn canonical_json(data: &Data) -> String {
    let mut out = String::new();
    write_map(&mut out, data);
    out
}

fn write_map(out: &mut String, data: &Data) {
    let mut entries: Vec<(&str, &Value)> = data.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

fn write_str(out: &mut String, s: &str) {
    // Serialising a string cannot fail; the fallback only keeps this function total.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\"")));
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => write_map(out, m),
    }
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
    } else if f.fract() == 0.0 && f.abs() < EXACT_INT {
        let _ = write!(out, "{}", f as i64);
    } else {
        let _ = write!(out, "{f:?}");
    }
}

/// The recorded identity of the model: a hash of its description, and the description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelFingerprint {
    /// SHA-256 (64 lowercase hex digits) of [`canonical_json`] of `info`.
    pub sha256: String,
    /// The model description as given (name, layers, sizes, ...).
    pub info: Data,
}

impl ModelFingerprint {
    /// Hashes a model description.
    pub fn new(info: Data) -> Self {
        ModelFingerprint { sha256: model_hash(&info), info }
    }

    /// The first 12 hex digits of the hash, for display.
    pub fn short_hash(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

/// SHA-256 (lowercase hex) of the canonical JSON of a model description.
pub fn model_hash(info: &Data) -> String {
    hex(&Sha256::digest(canonical_json(info).as_bytes()))
}

#[cfg(test)]
mod tests {
    use obs_core::data;

    use super::*;

    #[test]
    fn key_order_does_not_matter_and_nesting_is_sorted() {
        let a =
            data! { "b" => 1, "a" => data! { "z" => true, "y" => Value::Null }, "c" => vec![2, 1] };
        let b =
            data! { "c" => vec![2, 1], "a" => data! { "y" => Value::Null, "z" => true }, "b" => 1 };
        assert_eq!(canonical_json(&a), r#"{"a":{"y":null,"z":true},"b":1,"c":[2,1]}"#);
        assert_eq!(model_hash(&a), model_hash(&b));
        // List order is data, not presentation: it must change the hash.
        let c =
            data! { "c" => vec![1, 2], "a" => data! { "y" => Value::Null, "z" => true }, "b" => 1 };
        assert_ne!(model_hash(&a), model_hash(&c));
    }

    #[test]
    fn numbers_are_canonical() {
        let d = data! {
            "a" => 64.0, "b" => -0.0, "c" => 0.1, "d" => 1e-7, "e" => 1.5e300, "f" => 2.5,
            "g" => f64::NAN, "h" => f64::NEG_INFINITY, "i" => u64::MAX, "j" => -5, "k" => 1e17,
        };
        assert_eq!(
            canonical_json(&d),
            r#"{"a":64,"b":0,"c":0.1,"d":1e-7,"e":1.5e300,"f":2.5,"g":"NaN","h":"-Infinity","i":18446744073709551615,"j":-5,"k":1e17}"#
        );
        assert_eq!(model_hash(&data! { "units" => 64 }), model_hash(&data! { "units" => 64.0 }));
    }

    #[test]
    fn keys_sort_by_bytes_and_strings_escape() {
        let d = data! { "é" => "x", "Z" => "q\"\\\n\u{1}", "a" => "/" };
        assert_eq!(canonical_json(&d), "{\"Z\":\"q\\\"\\\\\\n\\u0001\",\"a\":\"/\",\"é\":\"x\"}");
    }

    #[test]
    fn known_answer() {
        // The SHA-256 of `{}`, pinned: an empty description must hash like this everywhere.
        assert_eq!(
            model_hash(&Data::new()),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let m = ModelFingerprint::new(data! { "name" => "mlp" });
        assert_eq!(m.short_hash().len(), 12);
        assert!(m.sha256.starts_with(m.short_hash()));
    }
}
