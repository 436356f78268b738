//! The commands that read a stored run: summary, report, tail, export.

use std::time::{Duration, Instant};

use observatory::bridges::tensorboard::EventFileReader;
use observatory::bridges::wandb::read_run_file;
use observatory::storage::LogReader;

use crate::{command, demo, files_starting, obs, tempdir};

/// The lines of the `Metrics` and `Gradient Norms` sections of epoch `epoch`'s summary.
fn summary_block(text: &str, epoch: u64) -> Vec<String> {
    let head = format!("══ Epoch {epoch} Summary");
    text.lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| {
            l.starts_with("  ") && !l.starts_with("  Activations") && !l.starts_with("  Epoch")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn summary_recomputes_the_live_epoch_summaries_and_groups_warnings() {
    let dir = tempdir();
    let (run_dir, live) = demo(dir.path(), 2, &["--scenario", "dying-relu"]);
    let run = obs(dir.path(), &["summary", "out"]).expect(0);
    for epoch in 0..2 {
        let from_logs = summary_block(&run.stdout, epoch);
        assert!(from_logs.len() >= 6, "{}", run.stdout);
        // The same numbers the demo printed while training, recomputed from the stored batches.
        assert_eq!(from_logs, summary_block(&live.stdout, epoch));
    }
    assert!(
        run.stdout
            .contains(&format!("Run: out/{}", run_dir.file_name().unwrap().to_string_lossy()))
    );
    assert!(run.stdout.contains("  Epoch end: loss="), "{}", run.stdout);
    let row = |source: &str, rule: &str| {
        run.stdout.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 4 && cols[0] == source && cols[1] == rule && cols[2] == "warning"
        })
    };
    assert!(row("anomaly", "dead_relu"), "{}", run.stdout);
}

#[test]
fn report_renders_the_dashboard_from_logs() {
    let dir = tempdir();
    let (run_dir, _) = demo(dir.path(), 1, &[]);
    obs(dir.path(), &["report", "out"]).expect(0);
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("<html") && html.contains("obs-testkit mlp"), "{}", html.len());

    let run =
        obs(dir.path(), &["report", "out", "-o", "page.html", "--title", "<my run>"]).expect(0);
    let page = std::fs::read_to_string(dir.path().join("page.html")).unwrap();
    assert!(page.contains("&lt;my run&gt;") && !page.contains("<my run>"));
    assert!(run.stdout.contains("page.html"), "{}", run.stdout);
}

#[test]
fn tail_without_follow_prints_every_event_with_tags() {
    let dir = tempdir();
    let (run_dir, _) = demo(dir.path(), 1, &["--scenario", "dying-relu"]);
    let reader = LogReader::open(&run_dir).unwrap();
    let total = reader.read_all().unwrap().count();
    let all = obs(dir.path(), &["tail", "out", "--no-follow"]).expect(0);
    assert_eq!(all.stdout.lines().count(), total);
    assert!(all.stdout.lines().next().unwrap().contains("train_start"));
    assert!(all.stdout.lines().last().unwrap().contains("train_end"));

    let health = obs(dir.path(), &["tail", "out", "--no-follow", "--tier", "health"]).expect(0);
    let lines: Vec<&str> = health.stdout.lines().collect();
    assert_eq!(lines.len(), reader.read_health().unwrap().count());
    assert!(lines.iter().all(|l| l.starts_with("[WARNING]")
        || l.starts_with("[DANGER]")
        || l.starts_with("[CRITICAL]")));
    assert!(lines.iter().any(|l| l.contains("anomaly:dead_relu")), "{}", health.stdout);

    // Following a run that already ended would wait forever: it says so and exits.
    let ended = obs(dir.path(), &["tail", "out"]).expect(0);
    assert!(ended.stdout.is_empty() && ended.stderr.contains("already ended"), "{}", ended.stderr);
}

#[test]
fn tail_follows_a_live_run_and_stops_at_train_end() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    // Started before the run exists: it waits for the logs, then follows them to train_end.
    let mut tail = command(dir.path(), &["tail", "out", "--from-start", "--poll-ms", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    demo(dir.path(), 2, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tail.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = tail.kill();
            panic!("obs tail did not stop at train_end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = tail.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().last().is_some_and(|l| l.contains("train_end")), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.contains("epoch_end")).count(), 2, "{stdout}");
}

#[test]
fn export_replays_the_logs_into_both_bridges() {
    let dir = tempdir();
    let (run_dir, _) = demo(dir.path(), 1, &[]);
    let run = obs(
        dir.path(),
        &["export", "out", "--tensorboard", "tb", "--wandb", "wb", "--project", "replayed"],
    )
    .expect(0);
    let total = LogReader::open(&run_dir).unwrap().read_all().unwrap().count();
    assert!(
        run.stdout.contains(&format!("TensorBoard: {total} events replayed")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!("W&B: {total} events replayed")), "{}", run.stdout);

    let name = run_dir.file_name().unwrap();
    let tb = files_starting(&dir.path().join("tb").join(name), "events.out.tfevents.");
    assert_eq!(tb.len(), 1);
    let records = EventFileReader::open(&tb[0]).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    assert!(records.len() > 10);
    let runs = files_starting(&dir.path().join("wb").join("wandb"), "offline-run-");
    assert_eq!(runs.len(), 1);
    let log = files_starting(&runs[0], "run-");
    let records = read_run_file(&log[0]).unwrap();
    assert!(records.iter().any(|r| matches!(
        r,
        observatory::bridges::wandb::WandbRecord::Run { project, .. } if project == "replayed"
    )));

    // A target is required.
    let none = obs(dir.path(), &["export", "out"]).expect(2);
    assert!(none.stderr.contains("--tensorboard"), "{}", none.stderr);
}
