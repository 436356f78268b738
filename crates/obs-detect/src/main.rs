//! `obs-detect`: trains every run of the labelled benchmark, scores both engines at their
//! default configurations and prints the report (see the crate docs).
//!
//! `obs-detect [--check] [--quiet] [--trace] [--runs SUBSTRING] [--split calibration|held-out]`

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use obs_detect::catalogue::{Split, runs};
use obs_detect::report;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut check = false;
    let mut quiet = false;
    let mut trace = false;
    let mut filter = String::new();
    let mut split = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => check = true,
            "--quiet" => quiet = true,
            "--trace" => trace = true,
            "--runs" => filter = it.next().cloned().unwrap_or_default(),
            "--split" => {
                split = match it.next().map(String::as_str) {
                    Some("calibration") => Some(Split::Calibration),
                    Some("held-out") => Some(Split::HeldOut),
                    other => {
                        eprintln!(
                            "obs-detect: --split takes calibration or held-out, not {other:?}"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            other => {
                eprintln!(
                    "obs-detect: unknown argument {other:?}\n\
                     usage: obs-detect [--check] [--quiet] [--trace] [--runs SUBSTRING] [--split calibration|held-out]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let selected: Vec<_> = runs()
        .into_iter()
        .filter(|r| r.id().contains(&filter) && split.is_none_or(|s| r.split == s))
        .collect();
    let started = std::time::Instant::now();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scores = match obs_detect::evaluate(selected, workers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("obs-detect: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if trace {
        print!("{}", report::trace(&scores));
    }
    if !quiet {
        print!("{}", report::per_run(&scores));
    }
    print!("{}", report::summary(&scores));
    println!("\n{} runs in {:.1} s", scores.len(), started.elapsed().as_secs_f64());
    let failures = report::failures(&scores);
    if failures.is_empty() {
        println!("every held-out target met");
        return ExitCode::SUCCESS;
    }
    println!("held-out targets missed:");
    for f in &failures {
        println!("  {f}");
    }
    if check { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
