//! The owned training event and its NDJSON form.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Data, EventType, LogLevel, Severity, Tier, Value};

/// One training event: small, owned, and serialisable to exactly one NDJSON line.
///
/// The serialised form always has the ten keys of the reference schema in this order:
/// `event_type, level, timestamp, epoch, batch, layer_name, layer_index, severity, message, data`
/// (absent values are `null`), then, only for events of a multi-process run, the optional keys
/// `rank` and `world_size` (omitted when `None`, so single-process lines keep the reference
/// schema byte for byte). See `docs/events.md`.
///
/// Raw tensors never enter an event: the statistics kernels reduce them to numbers first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event_type: EventType,
    /// The detail level this event belongs to.
    pub level: LogLevel,
    /// Unix time in seconds.
    #[serde(serialize_with = "ser_timestamp", deserialize_with = "de_timestamp")]
    pub timestamp: f64,
    /// The epoch the run was in (0-based), if any.
    pub epoch: Option<u64>,
    /// The batch within the epoch (0-based), if any.
    pub batch: Option<u64>,
    /// The layer this event is about, if any.
    pub layer_name: Option<String>,
    /// The layer's position in the model, if known.
    pub layer_index: Option<u64>,
    /// How serious the event is.
    pub severity: Severity,
    /// A short human-readable message.
    pub message: String,
    /// Structured payload.
    #[serde(default)]
    pub data: Data,
    /// The process rank (0-based) in a multi-process (data-parallel) run, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// How many processes the multi-process run has, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<u32>,
}

fn ser_timestamp<S: serde::Serializer>(t: &f64, s: S) -> Result<S::Ok, S::Error> {
    crate::value::serialize_f64(*t, s)
}

fn de_timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(f64::NAN),
        v => v.as_f64().ok_or_else(|| serde::de::Error::custom("timestamp must be a number")),
    }
}

/// The current Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Why an NDJSON line could not be parsed into an [`Event`].
#[derive(Debug)]
pub struct ParseEventError {
    inner: serde_json::Error,
}

impl ParseEventError {
    /// The 1-based column where parsing failed (0 if unknown).
    pub fn column(&self) -> usize {
        self.inner.column()
    }
}

impl std::fmt::Display for ParseEventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an Observatory event line: {}", self.inner)
    }
}

impl std::error::Error for ParseEventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

impl Event {
    /// A new event stamped with the current time, severity `info`, an empty message and no data.
    pub fn new(event_type: EventType, level: LogLevel) -> Self {
        Event::new_at(event_type, level, unix_now())
    }

    /// [`Event::new`] with a given Unix time in seconds.
    pub fn new_at(event_type: EventType, level: LogLevel, timestamp: f64) -> Self {
        Event {
            event_type,
            level,
            timestamp,
            epoch: None,
            batch: None,
            layer_name: None,
            layer_index: None,
            severity: Severity::Info,
            message: String::new(),
            data: Data::new(),
            rank: None,
            world_size: None,
        }
    }

    /// Sets the rank and world size of the process the event comes from.
    #[must_use]
    pub fn ranked(mut self, rank: Option<u32>, world_size: Option<u32>) -> Self {
        self.rank = rank;
        self.world_size = world_size;
        self
    }

    /// Sets the message.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the epoch and batch.
    #[must_use]
    pub fn at(mut self, epoch: Option<u64>, batch: Option<u64>) -> Self {
        self.epoch = epoch;
        self.batch = batch;
        self
    }

    /// Sets the layer name and index.
    #[must_use]
    pub fn layer(mut self, name: impl Into<String>, index: Option<u64>) -> Self {
        self.layer_name = Some(name.into());
        self.layer_index = index;
        self
    }

    /// Replaces the data payload.
    #[must_use]
    pub fn data(mut self, data: Data) -> Self {
        self.data = data;
        self
    }

    /// Adds one field to the data payload.
    #[must_use]
    pub fn field(mut self, key: impl Into<crate::value::Key>, value: impl Into<Value>) -> Self {
        self.data.insert(key, value);
        self
    }

    /// The storage tier this event is routed to.
    pub fn tier(&self) -> Tier {
        Tier::route(self.event_type, self.severity)
    }

    /// Writes the event as one NDJSON line (including the trailing `\n`).
    ///
    /// # Errors
    /// Only errors of the writer itself.
    pub fn write_ndjson<W: io::Write>(&self, mut w: W) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        self.encode_ndjson(&mut line);
        w.write_all(&line)
    }

    /// Appends the event's NDJSON line (including the trailing `\n`) to `out`.
    ///
    /// The bytes are exactly those of `serde_json` serialising the event, newline added; this
    /// hand-written encoder is what storage uses, several times cheaper than serde's.
    pub fn encode_ndjson(&self, out: &mut Vec<u8>) {
        crate::json::event(out, self);
    }

    /// The event as one NDJSON line, without the trailing newline.
    pub fn to_ndjson(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        self.encode_ndjson(&mut buf);
        buf.pop();
        // The encoder writes only valid UTF-8 (the input strings and ASCII).
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Parses one NDJSON line (a trailing newline is allowed).
    ///
    /// # Errors
    /// When the line is not valid JSON or lacks a required key.
    pub fn from_ndjson(line: &str) -> Result<Event, ParseEventError> {
        serde_json::from_str(line.trim_end_matches(['\n', '\r']))
            .map_err(|inner| ParseEventError { inner })
    }

    /// Parses one NDJSON line given as bytes.
    ///
    /// # Errors
    /// When the bytes are not UTF-8 JSON of an event.
    pub fn from_ndjson_bytes(line: &[u8]) -> Result<Event, ParseEventError> {
        serde_json::from_slice(line.trim_ascii_end()).map_err(|inner| ParseEventError { inner })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::data;

    #[test]
    fn ndjson_has_ten_keys_in_order() {
        let mut e = Event::new(EventType::EpochEnd, LogLevel::Basic)
            .message("Epoch 1 done")
            .at(Some(0), None)
            .data(data! { "metrics" => data! { "loss" => 0.85, "accuracy" => f32::NAN } });
        e.timestamp = 1740000000.0;
        assert_eq!(
            e.to_ndjson(),
            r#"{"event_type":"epoch_end","level":"BASIC","timestamp":1740000000.0,"epoch":0,"batch":null,"layer_name":null,"layer_index":null,"severity":"info","message":"Epoch 1 done","data":{"metrics":{"loss":0.85,"accuracy":"NaN"}}}"#
        );
        assert_eq!(Event::from_ndjson(&e.to_ndjson()).unwrap(), e);
    }

    #[test]
    fn rank_keys_follow_data_and_are_omitted_when_absent() {
        let mut e = Event::new_at(EventType::BatchEnd, LogLevel::Basic, 1.5).at(Some(0), Some(3));
        let single = e.to_ndjson();
        assert!(!single.contains("rank"), "{single}");
        e = e.ranked(Some(2), Some(4));
        let line = e.to_ndjson();
        assert!(line.ends_with(r#""data":{},"rank":2,"world_size":4}"#), "{line}");
        assert_eq!(Event::from_ndjson(&line).unwrap(), e);
        let back = Event::from_ndjson(&single).unwrap();
        assert_eq!((back.rank, back.world_size), (None, None));
    }

    #[test]
    fn reference_lines_without_optional_keys_parse() {
        let line = r#"{"event_type":"epoch_end","level":"BASIC","timestamp":1740000001.5,"epoch":1,"severity":"info","message":"Epoch 2 done","data":{"metrics":{"loss":0.63,"accuracy":0.81}}}"#;
        let e = Event::from_ndjson(line).unwrap();
        assert_eq!(e.epoch, Some(1));
        assert_eq!(e.layer_name, None);
        assert_eq!(e.data.path(&["metrics", "loss"]).and_then(Value::as_f64), Some(0.63));
    }

    /// Any string, with the characters JSON must escape over-represented.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".*",
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\u{8}'),
                    Just('\u{c}'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('é'),
                    Just('/'),
                    any::<char>()
                ],
                0..12
            )
            .prop_map(|c| c.into_iter().collect())
        ]
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(1e16),
            Just(1e-7),
            (-1e6..1e6f64)
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UInt),
            float().prop_map(Value::Float),
            text().prop_map(Value::Str),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::vec((text(), inner), 0..4)
                    .prop_map(|kv| Value::Map(kv.into_iter().collect())),
            ]
        })
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            (0..EventType::ALL.len(), 0..5usize, 0..5usize, float()),
            (any::<Option<u64>>(), any::<Option<u64>>(), any::<Option<u64>>()),
            (proptest::option::of(text()), text()),
            proptest::collection::vec((text(), value()), 0..5),
            (any::<Option<u32>>(), any::<Option<u32>>()),
        )
            .prop_map(
                |((t, l, s, ts), (epoch, batch, index), (name, message), data, (rank, world))| {
                    let mut e = Event::new_at(EventType::ALL[t], LogLevel::ALL[l], ts)
                        .severity(Severity::ALL[s])
                        .message(message)
                        .at(epoch, batch)
                        .data(data.into_iter().collect())
                        .ranked(rank, world);
                    e.layer_name = name;
                    e.layer_index = index;
                    e
                },
            )
    }

    proptest! {
        #[test]
        fn the_hand_written_encoder_writes_what_serde_json_writes(e in event()) {
            let mut ours = Vec::new();
            e.encode_ndjson(&mut ours);
            let mut serde = serde_json::to_vec(&e).unwrap();
            serde.push(b'\n');
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
            prop_assert_eq!(ours, serde);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "{", "null", "{\"event_type\":\"nope\"}", "\u{0}\u{1}", "[1,2]"] {
            assert!(Event::from_ndjson(bad).is_err(), "{bad:?}");
        }
        assert!(Event::from_ndjson_bytes(&[0xff, 0xfe, b'{']).is_err());
    }
}
