//! Bad paths and corrupt inputs: a one-line message and exit code 2, never a panic.

use crate::{obs, tempdir};

#[test]
fn missing_and_empty_directories_are_clear_errors() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    for args in [
        &["summary", "missing"][..],
        &["report", "missing"],
        &["tail", "missing", "--no-follow"],
        &["export", "missing", "--tensorboard", "tb"],
        &["diff", "missing", "missing"],
    ] {
        let run = obs(dir.path(), args).expect(2);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.starts_with("obs: error: ") && run.stderr.contains("missing"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
    }
    let run = obs(dir.path(), &["summary", "empty"]).expect(2);
    assert!(run.stderr.contains("no Observatory logs in empty"), "{}", run.stderr);
    let run = obs(dir.path(), &["fingerprint", "--dataset", "missing.bin", "--no-git"]).expect(2);
    assert!(run.stderr.contains("missing.bin"), "{}", run.stderr);
    let run = obs(dir.path(), &["fingerprint", "--repo", "missing"]).expect(2);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
}

#[test]
fn corrupt_logs_are_refused_or_skipped_and_counted() {
    let dir = tempdir();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    // Not an event log at all: refused.
    std::fs::write(run_dir.join("basic.log"), "this is not json\n").unwrap();
    let run = obs(dir.path(), &["summary", "run"]).expect(2);
    assert!(run.stderr.contains("not an Observatory event log"), "{}", run.stderr);
    let run = obs(dir.path(), &["report", "run"]).expect(2);
    assert!(run.stderr.contains("not an Observatory event log"), "{}", run.stderr);

    // An event log with a damaged line in the middle: read, and the damage reported.
    let good = r#"{"event_type":"epoch_end","level":"BASIC","timestamp":1.0,"epoch":0,"batch":null,"layer_name":null,"layer_index":null,"severity":"info","message":"Epoch 1 done","data":{"metrics":{"loss":0.5}}}"#;
    std::fs::write(run_dir.join("basic.log"), format!("{good}\n{{\"event_type\": tor\n{good}\n"))
        .unwrap();
    let run = obs(dir.path(), &["summary", "run"]).expect(0);
    assert!(run.stderr.contains("skipped 1 damaged log line"), "{}", run.stderr);
    assert!(run.stdout.contains("Epoch end: loss=0.5000"), "{}", run.stdout);
}

#[test]
fn unwritable_output_and_bad_arguments_fail_with_code_2() {
    let dir = tempdir();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let run = obs(dir.path(), &["demo", "--out", "file/sub", "--epochs", "1"]).expect(2);
    assert!(run.stderr.starts_with("obs: error: "), "{}", run.stderr);
    assert!(run.stderr.contains("file/sub"), "{}", run.stderr);
    let run = obs(dir.path(), &["demo", "--scenario", "bogus"]).expect(2);
    assert!(run.stderr.contains("healthy-tanh"), "{}", run.stderr);
    obs(dir.path(), &["demo", "--epochs", "0"]).expect(2);
    obs(dir.path(), &["no-such-command"]).expect(2);
}
