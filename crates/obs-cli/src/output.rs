//! Writing results to stdout, and the plain-text forms of severities, positions and events.
//!
//! Results go through [`say!`], which writes with `writeln!` and ignores a closed pipe: `obs
//! summary DIR | head` must neither panic nor stop a demo run half-way through its logging.

use std::fmt::{self, Write as _};
use std::io::{self, Write};

use observatory::core::{Event, Severity, Value};
use observatory::health::HealthWarning;

/// Writes one line to stdout, ignoring errors (a closed pipe).
pub(crate) fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// `println!` that never panics on a closed stdout.
macro_rules! say {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
pub(crate) use say;

/// The severity as a fixed-width tag: `[info]`, `[ok]`, `[WARNING]`, `[DANGER]`, `[CRITICAL]`.
/// Alerts are upper case so they stand out without colour.
pub(crate) fn tag(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "[info]    ",
        Severity::Success => "[ok]      ",
        Severity::Warning => "[WARNING] ",
        Severity::Danger => "[DANGER]  ",
        Severity::Critical => "[CRITICAL]",
    }
}

/// Prints a health warning as it happens: `[WARNING]  health  e0 b3     dead_relu: ...`.
pub(crate) fn say_warning(w: &HealthWarning) {
    say!("{} health  {:<9} {}: {}", tag(w.severity), at(w.epoch, w.batch), w.rule_name, w.message);
}

/// `e3 b12`, `e3` or `-`: where in the run something happened (0-based, as in the logs).
pub(crate) fn at(epoch: Option<u64>, batch: Option<u64>) -> String {
    match (epoch, batch) {
        (Some(e), Some(b)) => format!("e{e} b{b}"),
        (Some(e), None) => format!("e{e}"),
        (None, Some(b)) => format!("b{b}"),
        (None, None) => "-".to_owned(),
    }
}

/// A number short enough for one line: 4 significant digits, scientific when tiny or huge.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{x:.3e}") } else { format!("{x:.4}") }
}

/// A byte count with a binary unit: `812 B`, `8.1 KiB`, `2.3 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The numbers of a metrics map, `loss=0.4123 accuracy=0.8750`.
fn metrics_text(out: &mut String, metrics: &observatory::core::Data) {
    for (k, v) in metrics {
        if let Some(x) = v.as_f64() {
            let _ = write!(out, " {k}={}", num(x));
        }
    }
}

/// One event as one line: severity tag, tier, position, type, layer, message and the numbers
/// a reader looks for (metrics, a rule name, a gradient norm).
pub(crate) fn event_line(e: &Event) -> String {
    let mut s = String::new();
    if let Some(rank) = e.rank {
        let _ = write!(s, "r{rank} ");
    }
    let _ = write!(
        s,
        "{} {:<6} {:<9} {:<17}",
        tag(e.severity),
        e.tier().as_str(),
        at(e.epoch, e.batch),
        e.event_type.as_str()
    );
    if let Some(layer) = &e.layer_name {
        let _ = write!(s, " {layer}");
    }
    if let Some(rule) = e.data.get("rule_name").and_then(Value::as_str) {
        let source = match e.data.get("source").and_then(Value::as_str) {
            Some("adaptive") => "anomaly",
            _ => "health",
        };
        let _ = write!(s, " {source}:{rule}");
    }
    if !e.message.is_empty() {
        let _ = write!(s, " {}", e.message);
    }
    if let Some(m) = e.data.get("metrics").and_then(Value::as_map) {
        metrics_text(&mut s, m);
    }
    for key in ["grad_norm", "l2_norm", "zeros_pct", "update_norm", "duration_s"] {
        if let Some(x) = e.data.get_f64(key) {
            let _ = write!(s, " {key}={}", num(x));
        }
    }
    s.truncate(s.trim_end().len());
    s
}

#[cfg(test)]
mod tests {
    use observatory::core::{EventType, LogLevel, data};

    use super::*;

    #[test]
    fn numbers_and_sizes_read_well() {
        assert_eq!(num(0.41234567), "0.4123");
        assert_eq!(num(2.5e-9), "2.500e-9");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(0.0), "0.0000");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(8 * 1024 + 100), "8.1 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(at(Some(3), Some(12)), "e3 b12");
        assert_eq!(at(None, None), "-");
    }

    #[test]
    fn warning_lines_carry_tag_rule_and_message() {
        let e = Event::new(EventType::HealthCheck, LogLevel::Basic)
            .severity(Severity::Warning)
            .at(Some(0), Some(7))
            .message("Possible dying ReLU in 'dense_0'")
            .data(data! { "rule_name" => "dead_relu" });
        let line = event_line(&e);
        assert!(line.starts_with("[WARNING]  health e0 b7"), "{line}");
        assert!(line.contains("health:dead_relu Possible dying ReLU"), "{line}");
        let epoch = Event::new(EventType::EpochEnd, LogLevel::Basic)
            .at(Some(2), None)
            .data(data! { "metrics" => data! { "loss" => 0.5, "name" => "x" } });
        assert!(
            event_line(&epoch).ends_with("epoch_end         loss=0.5000"),
            "{}",
            event_line(&epoch)
        );
    }
}
