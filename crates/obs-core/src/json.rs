//! Hand-written NDJSON encoding of events.
//!
//! [`Event::encode_ndjson`] writes exactly the bytes `serde_json` writes for the event's
//! `Serialize` implementation (a property test checks it on arbitrary events), without serde's
//! per-field dispatch: storage encodes every event it writes, on the bus thread, and this is most
//! of that work. Floats use the shortest round-trip form (`zmij`, as `serde_json` does),
//! integers `itoa`; strings are escaped as `serde_json` escapes them.

use std::sync::OnceLock;

use crate::{Data, Event, EventType, LogLevel, Severity, Value};

/// Writes `s` as a JSON string: `"` and `\` and control characters escaped, the rest as is.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Names and messages rarely need escaping: one vectorised scan, then one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short == 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes a float as [`crate::serialize_f64`] does: shortest round-trip form, non-finite values
/// as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(crate) fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => int(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

pub(crate) fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => int(out, *i),
        Value::UInt(u) => int(out, *u),
        Value::Float(f) => float(out, *f),
        Value::Str(s) => string(out, s),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, item);
            }
            out.push(b']');
        }
        Value::Map(m) => map(out, m),
    }
}

pub(crate) fn map(out: &mut Vec<u8>, m: &Data) {
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

/// `{"event_type":"<type>","level":"<level>","timestamp":` for every type and level, built
/// once: the start of every line in one copy instead of five.
fn head(event_type: EventType, level: LogLevel) -> &'static [u8] {
    static HEADS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let heads = HEADS.get_or_init(|| {
        let mut heads = Vec::with_capacity(EventType::ALL.len() * LogLevel::ALL.len());
        for t in EventType::ALL {
            for l in LogLevel::ALL {
                heads.push(
                    format!(
                        r#"{{"event_type":"{}","level":"{}","timestamp":"#,
                        t.as_str(),
                        l.as_str()
                    )
                    .into_bytes(),
                );
            }
        }
        heads
    });
    &heads[event_type.index() * LogLevel::ALL.len() + level as usize]
}

/// `,"severity":"<severity>","message":"","data":` for every severity (most events carry no
/// message), built once.
fn severity_without_message(severity: Severity) -> &'static [u8] {
    static TAILS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let tails = TAILS.get_or_init(|| {
        Severity::ALL
            .iter()
            .map(|s| format!(r#","severity":"{}","message":"","data":"#, s.as_str()).into_bytes())
            .collect()
    });
    &tails[severity as usize]
}

/// Appends the event's NDJSON line, newline included.
pub(crate) fn event(out: &mut Vec<u8>, e: &Event) {
    // One capacity check for a typical line; longer lines grow as usual.
    out.reserve(256);
    out.extend_from_slice(head(e.event_type, e.level));
    float(out, e.timestamp);
    out.extend_from_slice(b",\"epoch\":");
    opt_u64(out, e.epoch);
    out.extend_from_slice(b",\"batch\":");
    opt_u64(out, e.batch);
    match (&e.layer_name, e.layer_index) {
        (None, None) => out.extend_from_slice(b",\"layer_name\":null,\"layer_index\":null"),
        (name, index) => {
            out.extend_from_slice(b",\"layer_name\":");
            match name {
                Some(name) => string(out, name),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"layer_index\":");
            opt_u64(out, index);
        }
    }
    if e.message.is_empty() {
        out.extend_from_slice(severity_without_message(e.severity));
        map(out, &e.data);
    } else {
        out.extend_from_slice(b",\"severity\":\"");
        out.extend_from_slice(e.severity.as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        string(out, &e.message);
        out.extend_from_slice(b",\"data\":");
        map(out, &e.data);
    }
    if let Some(rank) = e.rank {
        out.extend_from_slice(b",\"rank\":");
        int(out, rank);
    }
    if let Some(world_size) = e.world_size {
        out.extend_from_slice(b",\"world_size\":");
        int(out, world_size);
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prebuilt_pieces_name_every_type_level_and_severity() {
        for t in EventType::ALL {
            for l in LogLevel::ALL {
                let want = format!(r#"{{"event_type":"{}","level":"{}","timestamp":"#, t, l);
                assert_eq!(head(t, l), want.as_bytes());
            }
        }
        for s in Severity::ALL {
            let want = format!(r#","severity":"{}","message":"","data":"#, s.as_str());
            assert_eq!(severity_without_message(s), want.as_bytes());
        }
    }
}
