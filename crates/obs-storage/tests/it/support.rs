//! Helpers shared by the integration tests.

use std::io::Write;
use std::path::Path;

use obs_core::{Event, EventType, LogLevel, Severity, data};

/// An event of `event_type` at `epoch` with a fixed timestamp.
pub(crate) fn event(event_type: EventType, epoch: u64, timestamp: f64) -> Event {
    let mut e = Event::new(event_type, event_type.default_level())
        .at(Some(epoch), None)
        .message(format!("{event_type} {epoch}"))
        .data(data! { "loss" => 1.0 / (1.0 + epoch as f64), "nan" => f64::NAN });
    e.timestamp = timestamp;
    e
}

/// A health warning about `layer`.
pub(crate) fn warning(layer: &str, epoch: u64, timestamp: f64) -> Event {
    let mut e = Event::new(EventType::HealthCheck, LogLevel::Basic)
        .severity(Severity::Warning)
        .at(Some(epoch), Some(3))
        .layer(layer, Some(0))
        .message(format!("Possible dying ReLU in {layer}"));
    e.timestamp = timestamp;
    e
}

/// Writes `lines` (already terminated or not) to `dir/name`.
pub(crate) fn write_raw(dir: &Path, name: &str, bytes: &[u8]) {
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The NDJSON lines of `events`, each terminated.
pub(crate) fn ndjson(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        e.write_ndjson(&mut out).unwrap();
    }
    out
}
