//! De-duplication: counted in checks, per (rule, layer), deterministic and configurable.

use obs_core::Severity;
use obs_health::{BatchInput, HealthSummary, HealthWarning, Rule};

use crate::support::{engine, engine_with, grads, immediate, rules};

fn exploding_every_batch(dedup: u64, batches: u64) -> (Vec<(u64, HealthWarning)>, HealthSummary) {
    let mut e = engine_with(|c| c.dedup_batches = dedup);
    let mut out = Vec::new();
    for b in 0..batches {
        for w in grads(&mut e, b, &[("dense_0", 500.0)]) {
            out.push((b, w));
        }
    }
    (out, e.get_summary())
}

#[test]
fn a_persistent_finding_fires_once_per_window_with_its_repeats() {
    let (fired, summary) = exploding_every_batch(50, 120);
    let at: Vec<u64> = fired.iter().map(|(b, _)| *b).collect();
    assert_eq!(at, [0, 50, 100]);
    let repeats: Vec<u64> = fired.iter().map(|(_, w)| w.repeats()).collect();
    assert_eq!(repeats, [0, 49, 49]);
    assert_eq!(summary.total_warnings, 3);
    assert_eq!(summary.suppressed, 117);
    assert_eq!(summary.suppressed_by_rule.get(&Rule::ExplodingGradient), Some(&117));
    assert_eq!(summary.count(Rule::ExplodingGradient), 3);
    assert_eq!(summary.by_severity.get(&Severity::Danger), Some(&3));
}

#[test]
fn window_zero_turns_de_duplication_off_and_one_only_merges_a_single_check() {
    let (fired, summary) = exploding_every_batch(0, 10);
    assert_eq!(fired.len(), 10);
    assert_eq!(summary.suppressed, 0);
    let (fired, _) = exploding_every_batch(1, 10);
    assert_eq!(fired.len(), 10);
    let (fired, _) = exploding_every_batch(3, 10);
    assert_eq!(fired.iter().map(|(b, _)| *b).collect::<Vec<_>>(), [0, 3, 6, 9]);
}

#[test]
fn layers_and_rules_are_de_duplicated_separately() {
    let mut e = immediate();
    let w = grads(&mut e, 0, &[("a", 500.0), ("b", 1e-9)]);
    assert_eq!(rules(&w), [Rule::ExplodingGradient, Rule::VanishingGradient]);
    // The same layers with swapped findings: new (rule, layer) pairs, so both fire.
    let w = grads(&mut e, 1, &[("a", 1e-9), ("b", 500.0)]);
    assert_eq!(rules(&w), [Rule::VanishingGradient, Rule::ExplodingGradient]);
    // A third layer is not silenced by the others.
    let w = grads(&mut e, 2, &[("a", 500.0), ("c", 500.0)]);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].layer_name.as_deref(), Some("c"));
}

#[test]
fn epoch_rules_use_their_own_window() {
    let mut e = engine();
    let mut at = Vec::new();
    for epoch in 0..15 {
        for w in e.check_epoch(epoch, 1.0, None) {
            if w.rule() == Some(Rule::LossStagnation) {
                at.push((epoch, w.repeats()));
            }
        }
    }
    // Fires at the fifth epoch, then once per 5 epoch checks.
    assert_eq!(at, [(4, 0), (9, 4), (14, 4)]);
    // Batch checks in between do not advance the epoch window.
    let mut e = engine();
    for epoch in 0..5 {
        e.check_epoch(epoch, 1.0, None);
    }
    for b in 0..500 {
        e.check_batch(&BatchInput::new(5, b));
    }
    assert!(e.check_epoch(5, 1.0, None).is_empty());
}

#[test]
fn the_same_inputs_give_the_same_warnings() {
    let run = || {
        let mut e = engine();
        let mut all = Vec::new();
        for b in 0..400u64 {
            let g = 0.5 + (b % 7) as f64 * 0.1 + if b % 97 == 0 { 30.0 } else { 0.0 };
            let l = if b == 250 { f64::NAN } else { 1.0 / (1.0 + b as f64) };
            let u = if b > 300 { 0.0 } else { 1e-3 };
            let norms = [("dense_0", g), ("dense_1", g * 300.0)];
            let ups = [("dense_0", u), ("dense_1", 1e-3)];
            all.extend(e.check_batch(
                &BatchInput::new(b / 40, b % 40).loss(l).gradient_norms(&norms).update_norms(&ups),
            ));
            if b % 40 == 39 {
                all.extend(e.check_epoch(b / 40, l, Some(l * 2.0)));
            }
        }
        (all, e.get_summary())
    };
    let (a, sa) = run();
    let (b, sb) = run();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let kinds: std::collections::BTreeSet<_> = rules(&a).into_iter().collect();
    assert!(kinds.len() >= 3, "{kinds:?}");
}

#[test]
fn recent_warnings_are_bounded_and_reset_forgets_everything() {
    let mut e = engine_with(|c| {
        c.max_recent = 3;
        c.dedup_batches = 0;
    });
    for b in 0..10 {
        grads(&mut e, b, &[("x", 500.0 + b as f64)]);
    }
    let s = e.get_summary();
    assert_eq!(s.total_warnings, 10);
    let last: Vec<_> = s.recent.iter().map(|w| w.batch).collect();
    assert_eq!(last, [Some(7), Some(8), Some(9)]);
    e.reset();
    assert_eq!(e.get_summary(), HealthSummary::default());
    assert_eq!(e.tracked_layers(), 0);
    assert_eq!(e.config().max_recent, 3);
    // After a reset a finding fires again at once.
    assert_eq!(grads(&mut e, 0, &[("x", 500.0)]).len(), 1);
}

#[test]
fn summary_serialises_with_names_as_keys() {
    let mut e = engine();
    grads(&mut e, 0, &[("x", 500.0)]);
    e.check_batch(&BatchInput::new(0, 1).loss(f64::NAN));
    let text = serde_json::to_string(&e.get_summary()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["total_warnings"], 2);
    assert_eq!(json["by_rule"]["exploding_gradient"], 1);
    assert_eq!(json["by_severity"]["critical"], 1);
    assert_eq!(json["recent"][1]["rule_name"], "nan_inf_loss");
    let back: HealthSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, e.get_summary());
}

#[test]
fn summary_default_engine_is_empty() {
    let s = engine().get_summary();
    assert_eq!(s.total_warnings, 0);
    assert!(s.by_rule.is_empty() && s.recent.is_empty());
}
