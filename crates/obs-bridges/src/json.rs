//! JSON text as W&B stores it in `value_json`: standard JSON, except that non-finite floats are
//! the bare tokens `NaN`, `Infinity` and `-Infinity` (what the wandb SDK writes and its Go core
//! reads back), not the quoted strings of our NDJSON logs.

use std::fmt::Write as _;

use obs_core::{Data, Value};

use crate::Histogram;

/// Writes a float: shortest round-trip form, bare tokens for non-finite values.
pub(crate) fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // The shortest representation that round-trips, as serde_json writes it (`1.0`, `0.1`,
        // `1e-7`, `1e16`): valid JSON, several times faster than `{:?}`.
        out.push_str(zmij::Buffer::new().format_finite(v));
    }
}

pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => float(out, *f),
        Value::Str(s) => string(out, s),
        Value::List(l) => {
            out.push('[');
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, v);
            }
            out.push(']');
        }
        Value::Map(m) => map(out, m),
    }
}

pub(crate) fn map(out: &mut String, m: &Data) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        value(out, v);
    }
    out.push('}');
}

/// A W&B histogram object: `{"_type":"histogram","values":[counts],"bins":[edges]}`.
pub(crate) fn histogram(out: &mut String, h: &Histogram) {
    out.push_str("{\"_type\":\"histogram\",\"values\":[");
    for (i, c) in h.counts().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        float(out, *c);
    }
    out.push_str("],\"bins\":[");
    for (i, e) in h.edges().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        float(out, *e);
    }
    out.push_str("]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::data;

    fn to_json(v: &Value) -> String {
        let mut s = String::new();
        value(&mut s, v);
        s
    }

    #[test]
    fn non_finite_floats_are_bare_tokens() {
        let d =
            data! { "a" => f64::NAN, "b" => f64::INFINITY, "c" => f64::NEG_INFINITY, "d" => 0.1 };
        assert_eq!(to_json(&Value::Map(d)), r#"{"a":NaN,"b":Infinity,"c":-Infinity,"d":0.1}"#);
    }

    #[test]
    fn finite_output_is_standard_json_and_round_trips() {
        let d = data! {
            "q\"uote\\" => "line\nbreak\u{1}\tend é",
            "ints" => vec![Value::Int(-3), Value::UInt(u64::MAX)],
            "floats" => vec![1e-7, 1e300, -0.0, 2.0, 1_795_859_643.441_531],
            "nested" => data! { "ok" => true, "none" => Value::Null },
        };
        let text = to_json(&Value::Map(d.clone()));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        // obs-core's own serialiser agrees on every finite value.
        assert_eq!(parsed, serde_json::to_value(&d).unwrap());
        assert!(text.starts_with(r#"{"q\"uote\\":"line\nbreak\u0001\tend é","#), "{text}");
    }
}
