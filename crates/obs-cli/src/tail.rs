//! `obs tail DIR`: follow a live run's logs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use observatory::core::{Event, EventType, Tier};
use observatory::storage::{FollowFrom, Follower, LogReader, ReadStats, StorageError};

use crate::error::{CliError, Context};
use crate::logs;
use crate::output::{event_line, say};

/// Which tiers `obs tail` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TierArg {
    /// Every tier, merged in time order.
    All,
    /// `basic.log`: train and epoch boundaries.
    Basic,
    /// `health.log`: warnings, anomalies and other alerts.
    Health,
    /// `debug.log`: batch and layer detail.
    Debug,
}

impl TierArg {
    fn includes(self, tier: Tier) -> bool {
        match self {
            TierArg::All => true,
            TierArg::Basic => tier == Tier::Basic,
            TierArg::Health => tier == Tier::Health,
            TierArg::Debug => tier == Tier::Debug,
        }
    }
}

/// Arguments of `obs tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// A run directory, or a directory of `run-*` runs (the newest is followed).
    dir: PathBuf,
    /// Print the events already written before following (default: only new events).
    #[arg(long)]
    from_start: bool,
    /// Which tier to print.
    #[arg(long, value_enum, default_value_t = TierArg::All)]
    tier: TierArg,
    /// Print the events already written and exit instead of following.
    #[arg(long)]
    no_follow: bool,
    /// Milliseconds between polls while following.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
}

/// Events read per follower and poll: bounds memory when a large log is printed.
const CHUNK: usize = 4096;

/// Opens the logs; while following, waits for a run that has not written anything yet.
fn open_waiting(args: &TailArgs) -> Result<LogReader, CliError> {
    let mut told = false;
    loop {
        match LogReader::open(&args.dir) {
            Err(StorageError::NoLogs { .. }) if !args.no_follow => {
                if !told {
                    eprintln!("obs: waiting for logs in {} (Ctrl-C to stop)", args.dir.display());
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(args.poll_ms));
            }
            other => {
                return other.context(|| format!("cannot read logs in {}", args.dir.display()));
            }
        }
    }
}

/// The readers to follow: each rank's of a multi-process run, else the run's own.
fn sources(reader: &LogReader) -> Vec<LogReader> {
    let ranks: Vec<LogReader> = reader.ranks().into_iter().filter_map(|r| reader.rank(r)).collect();
    if ranks.is_empty() { vec![reader.clone()] } else { ranks }
}

/// Whether the run's last basic event is `train_end`: following it would wait forever.
fn already_ended(reader: &LogReader) -> Result<bool, CliError> {
    let last = reader
        .read_basic()
        .context(|| format!("cannot read logs in {}", reader.run_dir().display()))?
        .last();
    Ok(last.is_some_and(|e| e.event_type == EventType::TrainEnd))
}

/// One poll of every follower: the new events, in time order, with their tiers.
fn poll_all(followers: &mut [Follower]) -> Result<Vec<(Tier, Event)>, CliError> {
    let mut round = Vec::new();
    let mut buf = Vec::new();
    for f in followers.iter_mut() {
        buf.clear();
        let tier = f.tier();
        f.poll(&mut buf, CHUNK).context(|| format!("following the {} log", tier.as_str()))?;
        round.extend(buf.drain(..).map(|e| (tier, e)));
    }
    // NaN timestamps first, as the log reader orders them; the sort is stable.
    round.sort_by(|a, b| {
        let key = |e: &Event| if e.timestamp.is_nan() { f64::NEG_INFINITY } else { e.timestamp };
        key(&a.1).total_cmp(&key(&b.1))
    });
    Ok(round)
}

/// Runs `obs tail`.
pub(crate) fn run(args: &TailArgs) -> Result<ExitCode, CliError> {
    let reader = open_waiting(args)?;
    let from_start = args.from_start || args.no_follow;
    let sources = sources(&reader);
    let mut all_ended = true;
    for source in &sources {
        all_ended &= already_ended(source)?;
    }
    if !from_start && all_ended {
        eprintln!(
            "obs: the run in {} has already ended; use --from-start or --no-follow to print it",
            reader.run_dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let from = if from_start { FollowFrom::Start } else { FollowFrom::End };
    let mut followers = Vec::with_capacity(3 * sources.len());
    for source in &sources {
        for tier in Tier::ALL {
            followers.push(
                source
                    .follow(tier, from)
                    .context(|| format!("cannot follow logs in {}", source.run_dir().display()))?,
            );
        }
    }
    if !args.no_follow {
        eprintln!(
            "obs: following {} (stops at train_end; Ctrl-C to stop earlier)",
            reader.run_dir().display()
        );
    }
    // A multi-process run ends when every rank has written its train_end.
    let mut ended_ranks = 0;
    loop {
        let round = poll_all(&mut followers)?;
        let got = round.len();
        for (tier, e) in &round {
            if args.tier.includes(*tier) {
                say!("{}", event_line(e));
            }
            ended_ranks += usize::from(e.event_type == EventType::TrainEnd);
        }
        if got == CHUNK * followers.len() || (got > 0 && args.no_follow) {
            // More may be waiting right now: read on before deciding anything.
            continue;
        }
        if ended_ranks >= sources.len() || args.no_follow {
            // One last round: events written with train_end in other tiers.
            for (tier, e) in poll_all(&mut followers)? {
                if args.tier.includes(tier) {
                    say!("{}", event_line(&e));
                }
            }
            break;
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(args.poll_ms));
        }
    }
    let mut stats = ReadStats::default();
    for f in &followers {
        stats.merge(f.stats());
    }
    logs::note_skipped(&stats);
    Ok(ExitCode::SUCCESS)
}
