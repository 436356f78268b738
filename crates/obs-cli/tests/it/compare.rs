//! `obs compare`: several stored runs on one page, exit codes like `obs diff`.

use crate::{demo, obs, tempdir};

#[test]
fn compare_overlays_runs_and_exits_like_diff() {
    let dir = tempdir();
    let (healthy, _) = demo(dir.path(), 2, &[]);
    let (dying, _) = demo(dir.path(), 2, &["--scenario", "dying-relu", "--seed", "9"]);
    let (h, d) = (healthy.to_str().unwrap(), dying.to_str().unwrap());

    let run = obs(dir.path(), &["compare", h, d, "-o", "cmp.html"]).expect(1);
    assert!(run.stdout.contains("Comparison of 2 runs"), "{}", run.stdout);
    assert!(run.stdout.contains("The fingerprints differ"), "{}", run.stdout);
    let html = std::fs::read_to_string(dir.path().join("cmp.html")).unwrap();
    let diffs = &html[html.find("id=\"compare-differences\"").unwrap()..];
    assert!(diffs.contains(
        "<th>seeds.random_seed</th><td class=\"tone-plain\">42</td><td class=\"tone-plain\">9</td>"
    ));
    assert!(diffs.contains("<th>hyperparameters.learning_rate</th>"));
    // The dying run's dead-ReLU finding sits in its own column; the healthy run has none.
    let findings = &html[html.find("id=\"compare-findings\"").unwrap()..];
    let row = &findings[findings.find("<th>dead_relu</th>").expect("dead_relu row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.starts_with(
            "<th>dead_relu</th><td class=\"tone-muted\">—</td><td class=\"tone-warn\">"
        )
    );

    // The same run twice: identical fingerprints, exit 0.
    let same = obs(dir.path(), &["compare", h, h, "-o", "same.html"]).expect(0);
    assert!(same.stdout.contains("agree on everything but run id and time"), "{}", same.stdout);

    // A run without its fingerprint cannot be shown to agree: exit 1, and it says why.
    std::fs::remove_file(dying.join("fingerprint.json")).unwrap();
    let missing = obs(dir.path(), &["compare", h, d, "-o", "missing.html"]).expect(1);
    assert!(missing.stderr.contains("fingerprints not compared"), "{}", missing.stderr);
    let html = std::fs::read_to_string(dir.path().join("missing.html")).unwrap();
    assert!(html.contains("Fingerprints not compared"));
}

#[test]
fn compare_refuses_bad_input_with_code_2() {
    let dir = tempdir();
    let (run, _) = demo(dir.path(), 1, &[]);
    let r = run.to_str().unwrap();
    let one = obs(dir.path(), &["compare", r]).expect(2);
    assert!(one.stderr.contains("2 values required"), "{}", one.stderr);
    let gone = obs(dir.path(), &["compare", r, "no-such-run"]).expect(2);
    assert!(gone.stderr.contains("no-such-run"), "{}", gone.stderr);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    obs(dir.path(), &["compare", r, "empty"]).expect(2);
    let many: Vec<&str> = std::iter::once("compare").chain(std::iter::repeat_n(r, 17)).collect();
    let too_many = obs(dir.path(), &many).expect(2);
    assert!(too_many.stderr.contains("at most 16"), "{}", too_many.stderr);
    let unwritable = obs(dir.path(), &["compare", r, r, "-o", "/proc/nope/cmp.html"]).expect(2);
    assert!(unwritable.stderr.contains("cannot write"), "{}", unwritable.stderr);
    assert!(!dir.path().join("compare.html").exists());
}
