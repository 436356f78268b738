//! The event bus: a bounded crossbeam channel and one thread that owns the backends.
//!
//! Training threads only build a small owned [`Event`] and send it; all encoding and I/O happen
//! on the bus thread. Events from one sending thread reach every backend in the order they were
//! sent. BASIC and health events are never dropped: when the queue is full the sender waits.
//! Debug-tier events may be dropped instead, but only if [`BusConfig::drop_debug_when_full`] is
//! set; every drop is counted, returned by [`EventBus::dropped`], and reported to the backends as
//! a `health_check` event at the next flush or close.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

use crate::{
    Backend, BackendError, BatchMetrics, Data, Event, EventType, LogLevel, Severity, Tier, Value,
};

/// Settings of an [`EventBus`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BusConfig {
    /// How many events the queue holds before senders wait (or debug events are dropped).
    pub capacity: usize,
    /// The largest batch handed to [`Backend::write`] at once.
    pub batch_size: usize,
    /// Drop debug-tier events, counted, instead of waiting when the queue is full.
    pub drop_debug_when_full: bool,
    /// Name of the bus thread.
    pub thread_name: String,
    /// The process rank in a multi-process run: every event that does not carry a rank yet
    /// is stamped with it (and [`BusConfig::world_size`]) on the bus thread, before any
    /// backend sees it. `None` (the default) leaves events as they are.
    pub rank: Option<u32>,
    /// The number of processes of the run; set together with [`BusConfig::rank`].
    pub world_size: Option<u32>,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            capacity: 8192,
            batch_size: 512,
            drop_debug_when_full: false,
            thread_name: "obs-bus".to_owned(),
            rank: None,
            world_size: None,
        }
    }
}

/// Which backend method failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`Backend::write`].
    Write,
    /// [`Backend::flush`].
    Flush,
    /// [`Backend::close`].
    Close,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Write => "write",
            Operation::Flush => "flush",
            Operation::Close => "close",
        })
    }
}

/// A backend error or panic, as reported by [`EventBus::flush`] and [`EventBus::close`].
///
/// Repeated failures of the same backend and operation are folded into one, counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendFailure {
    /// The backend's [`Backend::name`].
    pub backend: String,
    /// The method that failed.
    pub operation: Operation,
    /// The first error message (or panic message).
    pub message: String,
    /// Whether the backend panicked (it is then disabled).
    pub panicked: bool,
    /// How many times this failure happened since it was last reported.
    pub occurrences: u64,
}

impl fmt::Display for BackendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.panicked { "panicked in" } else { "failed to" };
        write!(f, "backend {:?} {what} {}: {}", self.backend, self.operation, self.message)?;
        if self.occurrences > 1 {
            write!(f, " ({} times)", self.occurrences)?;
        }
        Ok(())
    }
}

/// Per-backend totals in a [`CloseReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendReport {
    /// The backend's name.
    pub name: String,
    /// Events handed to it.
    pub events: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Whether it panicked and was disabled.
    pub panicked: bool,
}

/// What happened over the life of a bus, returned by [`EventBus::close`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// One entry per backend, in the order they were added.
    pub backends: Vec<BackendReport>,
    /// Failures not yet reported by an earlier `flush`.
    pub failures: Vec<BackendFailure>,
    /// Debug-tier events dropped because the queue was full.
    pub dropped: u64,
    /// Events refused because the bus was already closed.
    pub rejected: u64,
}

/// Errors of bus operations.
#[derive(Debug)]
#[non_exhaustive]
pub enum BusError {
    /// The bus thread could not be started.
    Spawn(std::io::Error),
    /// The bus is closed.
    Closed,
    /// The operation did not finish in time.
    Timeout(Duration),
    /// One or more backends failed since the last report.
    Backends(Vec<BackendFailure>),
    /// The rank settings are inconsistent (a rank without a world size, a rank not below the
    /// world size, a world size of 0, or unreadable launcher variables); the text says which.
    InvalidRank(String),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Spawn(e) => write!(f, "could not start the event bus thread: {e}"),
            BusError::Closed => f.write_str("the event bus is closed"),
            BusError::InvalidRank(why) => write!(f, "invalid rank settings: {why}"),
            BusError::Timeout(d) => write!(f, "the event bus did not answer within {d:?}"),
            BusError::Backends(fs) => {
                write!(f, "{} backend failure(s)", fs.len())?;
                for fail in fs {
                    write!(f, "; {fail}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BusError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// What happened to one sent event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for the backends.
    Queued,
    /// Dropped (debug tier, queue full, dropping enabled); counted.
    Dropped,
    /// Refused because the bus is closed; counted.
    Rejected,
}

enum Msg {
    Event(Event),
    /// A `batch_end` event in compact form (see [`EventBus::send_batch_end`]).
    BatchEnd(BatchEnd),
    Add(Box<dyn Backend>),
    Flush(Sender<Vec<BackendFailure>>),
    Close,
}

/// What a `batch_end` event carries that is not implied by its type.
struct BatchEnd {
    timestamp: f64,
    epoch: Option<u64>,
    batch: u64,
    metrics: BatchMetrics,
}

impl BatchEnd {
    /// The event `TrainingLogger::on_batch_end` describes: `{"metrics": {...}}` at its epoch and
    /// batch, level and severity by default. `spare` is the data map of an earlier such event
    /// (see [`BatchEnd::spare_data`]), refilled instead of allocating two new maps.
    fn into_event(self, spare: Option<Data>) -> Event {
        let data = match spare {
            Some(mut data) => {
                if let Some(Value::Map(metrics)) = data.value_mut("metrics") {
                    self.metrics.write_into(metrics);
                }
                data
            }
            None => {
                let mut data = Data::with_capacity(1);
                data.push_distinct("metrics".into(), Value::Map(self.metrics.into_data()));
                data
            }
        };
        // Fields set in place: the builders would move the whole event once per call.
        let mut event =
            Event::new_at(EventType::BatchEnd, EventType::BatchEnd.default_level(), self.timestamp);
        event.epoch = self.epoch;
        event.batch = Some(self.batch);
        event.data = data;
        event
    }

    /// The data map of a written event built by [`BatchEnd::into_event`], kept for the next
    /// one: `{"metrics": {...}}` with both maps' room allocated.
    fn spare_data(event: Event) -> Option<Data> {
        let data = event.data;
        let reusable = data.len() == 1 && matches!(data.get("metrics"), Some(Value::Map(_)));
        reusable.then_some(data)
    }
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    rejected: AtomicU64,
}

/// A bounded event queue and the thread that feeds the backends.
///
/// `EventBus` is `Send + Sync`; share it behind an `Arc` (as [`crate::TrainingLogger`] does).
/// Dropping it closes it.
pub struct EventBus {
    tx: Sender<Msg>,
    /// Events the backends are done with, handed back in batches to be freed by a sending
    /// thread (see [`Worker::retire`]).
    returned: Receiver<Vec<Event>>,
    drop_debug: bool,
    closed: AtomicBool,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<CloseReport>>>,
    report: Mutex<Option<CloseReport>>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("queued", &self.tx.len())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl EventBus {
    /// Starts a bus thread.
    ///
    /// # Errors
    /// [`BusError::Spawn`] when the OS refuses a new thread.
    /// [`BusError::InvalidRank`] when [`BusConfig::rank`] and [`BusConfig::world_size`] do not
    /// describe a rank of a run (see [`check_rank`]).
    pub fn spawn(config: BusConfig) -> Result<EventBus, BusError> {
        let stamp = check_rank(config.rank, config.world_size)?;
        let (tx, rx) = crossbeam_channel::bounded(config.capacity.max(1));
        let (give_back, returned) = crossbeam_channel::bounded(RETURNED_BATCHES);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            give_back,
            retired: Vec::new(),
            built_here: Vec::new(),
            spare: Vec::new(),
            batch_size: config.batch_size.max(1),
            slots: Vec::new(),
            pending: Vec::new(),
            counters: Arc::clone(&counters),
            reported_dropped: 0,
            stamp,
        };
        let thread = std::thread::Builder::new()
            .name(config.thread_name)
            .spawn(move || worker.run())
            .map_err(BusError::Spawn)?;
        Ok(EventBus {
            tx,
            returned,
            drop_debug: config.drop_debug_when_full,
            closed: AtomicBool::new(false),
            counters,
            thread: Mutex::new(Some(thread)),
            report: Mutex::new(None),
        })
    }

    /// Queues one event. Waits while the queue is full, except for debug-tier events when
    /// dropping is enabled.
    pub fn send(&self, event: Event) -> SendOutcome {
        let debug = event.tier() == Tier::Debug;
        self.send_msg(Msg::Event(event), debug)
    }

    /// Queues the `batch_end` event of `batch` (default level and severity, data
    /// `{"metrics": metrics}`) like [`EventBus::send`] would.
    ///
    /// The bus thread builds the event: the training thread only moves the metrics into the
    /// queue (inline when they fit, see [`BatchMetrics`]), and everything else the event
    /// allocates is allocated and freed on the bus thread, so a batch costs the training
    /// thread no more than one queue slot.
    pub fn send_batch_end(
        &self,
        timestamp: f64,
        epoch: Option<u64>,
        batch: u64,
        metrics: BatchMetrics,
    ) -> SendOutcome {
        let debug = Tier::route(EventType::BatchEnd, Severity::Info) == Tier::Debug;
        self.send_msg(Msg::BatchEnd(BatchEnd { timestamp, epoch, batch, metrics }), debug)
    }

    /// Sends `msg`, sleeping while the queue is full.
    ///
    /// A full queue means the backends are slower than the training thread. A sender blocked
    /// in crossbeam's `send` is woken for every slot the bus thread frees: one futex wake on
    /// the bus thread and one context switch on each side per event, which cost the bus
    /// thread a third of its rate exactly when it is the bottleneck. Sleeping a fixed
    /// [`FULL_QUEUE_WAIT`] instead lets it drain a run of events undisturbed; the queue holds
    /// thousands, so it never runs dry meanwhile and the rate is the backends'.
    fn send_waiting(&self, mut msg: Msg) -> Result<(), ()> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(()),
                Err(TrySendError::Full(back)) => {
                    msg = back;
                    std::thread::sleep(FULL_QUEUE_WAIT);
                }
            }
        }
    }

    fn send_msg(&self, msg: Msg, debug: bool) -> SendOutcome {
        // Free what the bus thread handed back on this thread, where most of it was allocated:
        // the allocator's per-thread cache refills, so the next event's allocations stay cheap
        // and local instead of taking the shared path every time.
        if let Ok(done) = self.returned.try_recv() {
            drop(done);
        }
        if self.closed.load(Ordering::Acquire) {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return SendOutcome::Rejected;
        }
        let result = if self.drop_debug && debug {
            match self.tx.try_send(msg) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return SendOutcome::Dropped;
                }
                Err(TrySendError::Disconnected(_)) => Err(()),
            }
        } else {
            self.send_waiting(msg)
        };
        match result {
            Ok(()) => SendOutcome::Queued,
            Err(()) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                SendOutcome::Rejected
            }
        }
    }

    /// Hands a backend to the bus thread. Events sent after this call returns reach it.
    ///
    /// # Errors
    /// [`BusError::Closed`] when the bus is closed; the backend is dropped.
    pub fn add_backend(&self, backend: Box<dyn Backend>) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        self.tx.send(Msg::Add(backend)).map_err(|_| BusError::Closed)
    }

    /// Waits until every event sent before this call has been written by every backend and each
    /// backend's [`Backend::flush`] has returned. Waits as long as that takes.
    ///
    /// # Errors
    /// [`BusError::Backends`] with every backend failure since the last report (the events still
    /// reached the other backends); [`BusError::Closed`] after `close`.
    pub fn flush(&self) -> Result<(), BusError> {
        self.flush_inner(None)
    }

    /// Like [`EventBus::flush`], but gives up after `timeout`.
    ///
    /// # Errors
    /// As [`EventBus::flush`], plus [`BusError::Timeout`].
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), BusError> {
        self.flush_inner(Some(timeout))
    }

    fn flush_inner(&self, timeout: Option<Duration>) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let failures = match timeout {
            None => {
                self.tx.send(Msg::Flush(ack_tx)).map_err(|_| BusError::Closed)?;
                ack_rx.recv().map_err(|_| BusError::Closed)?
            }
            Some(t) => {
                let deadline = Instant::now() + t;
                self.tx.send_timeout(Msg::Flush(ack_tx), t).map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => BusError::Timeout(t),
                    SendTimeoutError::Disconnected(_) => BusError::Closed,
                })?;
                ack_rx.recv_deadline(deadline).map_err(|e| match e {
                    RecvTimeoutError::Timeout => BusError::Timeout(t),
                    RecvTimeoutError::Disconnected => BusError::Closed,
                })?
            }
        };
        if failures.is_empty() { Ok(()) } else { Err(BusError::Backends(failures)) }
    }

    /// Writes every queued event, closes every backend and stops the bus thread.
    ///
    /// Idempotent: later calls return the same report. Also run by `Drop`.
    ///
    /// # Errors
    /// [`BusError::Backends`] when the bus thread itself died (it should not: backend panics
    /// are caught). Backend failures are returned inside the report.
    pub fn close(&self) -> Result<CloseReport, BusError> {
        let mut report_slot = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(report) = report_slot.as_ref() {
            return Ok(report.clone());
        }
        self.closed.store(true, Ordering::Release);
        // The worker may already be gone if it panicked; a failed send is then harmless.
        let _ = self.tx.send(Msg::Close);
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut report = match handle.map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) | None => {
                return Err(BusError::Backends(vec![BackendFailure {
                    backend: "obs-bus".to_owned(),
                    operation: Operation::Close,
                    message: "the bus thread panicked".to_owned(),
                    panicked: true,
                    occurrences: 1,
                }]));
            }
        };
        report.dropped = self.dropped();
        report.rejected = self.rejected();
        *report_slot = Some(report.clone());
        Ok(report)
    }

    /// Whether [`EventBus::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Debug-tier events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Events refused so far because the bus was closed.
    pub fn rejected(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue right now.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

struct Slot {
    backend: Box<dyn Backend>,
    name: String,
    events: u64,
    errors: u64,
    panicked: bool,
    /// Whether a failure of this backend was announced to the others since the last flush.
    announced: bool,
}

/// How long the worker sleeps between polls of an empty queue during a run.
const POLL_INTERVAL: Duration = Duration::from_micros(500);
/// How long the queue must stay empty before the worker blocks instead of polling.
const IDLE_BEFORE_BLOCKING: Duration = Duration::from_millis(200);

/// How long a sender sleeps before retrying a full queue (see [`EventBus::send_waiting`]).
const FULL_QUEUE_WAIT: Duration = Duration::from_micros(50);

/// Events handed back to the senders at once (see [`Worker::retire`]).
const RETURN_BATCH: usize = 64;
/// Returned batches that may wait for a sender; beyond that the bus thread frees them itself.
const RETURNED_BATCHES: usize = 4;

struct Worker {
    rx: Receiver<Msg>,
    give_back: Sender<Vec<Event>>,
    retired: Vec<Event>,
    /// For each event of the current batch: whether this thread built it (from a compact
    /// `batch_end` message), so it is freed here rather than handed back.
    built_here: Vec<bool>,
    /// Data maps of written batch_end events, refilled by the next ones (at most a batch's
    /// worth): allocating and freeing two maps per event was a tenth of this thread's time.
    spare: Vec<Data>,
    batch_size: usize,
    slots: Vec<Slot>,
    pending: Vec<BackendFailure>,
    counters: Arc<Counters>,
    reported_dropped: u64,
    /// `(rank, world_size)` stamped on events that carry no rank.
    stamp: Option<(u32, u32)>,
}

/// Checks a rank and world size: both absent, or `rank < world_size` with `world_size >= 1`.
/// Returns the pair to stamp on events.
///
/// # Errors
/// [`BusError::InvalidRank`] naming what is wrong.
pub fn check_rank(
    rank: Option<u32>,
    world_size: Option<u32>,
) -> Result<Option<(u32, u32)>, BusError> {
    match (rank, world_size) {
        (None, None) => Ok(None),
        (Some(rank), None) => {
            Err(BusError::InvalidRank(format!("rank {rank} was given without a world size")))
        }
        (None, Some(world)) => {
            Err(BusError::InvalidRank(format!("world size {world} was given without a rank")))
        }
        (Some(_), Some(0)) => {
            Err(BusError::InvalidRank("the world size must be at least 1".to_owned()))
        }
        (Some(rank), Some(world)) if rank >= world => Err(BusError::InvalidRank(format!(
            "rank {rank} is not below the world size {world} (ranks are 0-based)"
        ))),
        (Some(rank), Some(world)) => Ok(Some((rank, world))),
    }
}

/// Stamps an event with the bus's rank unless it already carries one.
#[inline]
fn stamp(event: &mut Event, stamp: Option<(u32, u32)>) {
    if let (Some((rank, world)), None) = (stamp, event.rank) {
        event.rank = Some(rank);
        event.world_size = Some(world);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl Worker {
    /// Waits for the next message; `None` once every sender is gone.
    ///
    /// While a run is active the worker sleeps and polls instead of blocking: a sender that
    /// finds the worker blocked in `recv` must wake it with a syscall (about 2 µs under a
    /// hypervisor, on the training thread), while a push to a polling worker costs no syscall.
    /// After [`IDLE_BEFORE_BLOCKING`] without messages it blocks, so an idle logger costs nothing.
    fn next_message(&self) -> Option<Msg> {
        let idle_since = Instant::now();
        loop {
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if idle_since.elapsed() >= IDLE_BEFORE_BLOCKING => {
                    return self.rx.recv().ok();
                }
                Err(TryRecvError::Empty) => std::thread::sleep(POLL_INTERVAL),
            }
        }
    }

    fn run(mut self) -> CloseReport {
        let mut batch: Vec<Event> = Vec::with_capacity(self.batch_size);
        // All senders gone means the bus was dropped without `close`: close anyway.
        while let Some(first) = self.next_message() {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(_) | Msg::BatchEnd(_) => {
                        let (mut event, built_here) = match msg {
                            Msg::BatchEnd(b) => (b.into_event(self.spare.pop()), true),
                            Msg::Event(e) => (e, false),
                            Msg::Add(_) | Msg::Flush(_) | Msg::Close => continue,
                        };
                        stamp(&mut event, self.stamp);
                        batch.push(event);
                        self.built_here.push(built_here);
                        if batch.len() >= self.batch_size {
                            self.dispatch(&mut batch);
                        }
                        next = self.rx.try_recv().ok();
                    }
                    Msg::Add(backend) => {
                        self.dispatch(&mut batch);
                        let name = backend.name().to_owned();
                        self.slots.push(Slot {
                            backend,
                            name,
                            events: 0,
                            errors: 0,
                            panicked: false,
                            announced: false,
                        });
                        next = self.rx.try_recv().ok();
                    }
                    Msg::Flush(ack) => {
                        self.dispatch(&mut batch);
                        self.announce_drops();
                        self.call_all(Operation::Flush);
                        for slot in &mut self.slots {
                            slot.announced = false;
                        }
                        let _ = ack.send(std::mem::take(&mut self.pending));
                        next = self.rx.try_recv().ok();
                    }
                    Msg::Close => return self.finish(&mut batch),
                }
            }
            self.dispatch(&mut batch);
        }
        self.finish(&mut batch)
    }

    fn finish(mut self, batch: &mut Vec<Event>) -> CloseReport {
        self.dispatch(batch);
        self.announce_drops();
        self.call_all(Operation::Close);
        CloseReport {
            backends: self
                .slots
                .iter()
                .map(|s| BackendReport {
                    name: s.name.clone(),
                    events: s.events,
                    errors: s.errors,
                    panicked: s.panicked,
                })
                .collect(),
            failures: std::mem::take(&mut self.pending),
            dropped: 0,
            rejected: 0,
        }
    }

    /// Hands the batch to every live backend, then announces any new failures.
    fn dispatch(&mut self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let mut failed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.panicked {
                continue;
            }
            slot.events += batch.len() as u64;
            if let Some(f) = call(slot, Operation::Write, batch) {
                record(&mut self.pending, f);
                if !slot.announced {
                    slot.announced = true;
                    failed.push(i);
                }
            }
        }
        self.retire(batch);
        self.announce_failures(&failed);
    }

    fn call_all(&mut self, op: Operation) {
        let mut failed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.panicked {
                continue;
            }
            if let Some(f) = call(slot, op, &[]) {
                record(&mut self.pending, f);
                if !slot.announced {
                    slot.announced = true;
                    failed.push(i);
                }
            }
        }
        if op != Operation::Close {
            self.announce_failures(&failed);
        }
    }

    /// Keeps the written events a sender built to hand them back, [`RETURN_BATCH`] at a time,
    /// instead of freeing them here: their payloads were allocated on a training thread, and
    /// freeing them on this one drains that thread's allocator cache on every event. Memory
    /// stays bounded: when [`RETURNED_BATCHES`] batches already wait (no sender came by), the
    /// events are freed here as before.
    fn retire(&mut self, batch: &mut Vec<Event>) {
        for (event, built_here) in batch.drain(..).zip(self.built_here.drain(..)) {
            if built_here {
                // Allocated on this thread (see `EventBus::send_batch_end`): its maps are
                // refilled by the next batch_end, or freed here.
                if self.spare.len() < self.batch_size
                    && let Some(data) = BatchEnd::spare_data(event)
                {
                    self.spare.push(data);
                }
                continue;
            }
            self.retired.push(event);
            if self.retired.len() == RETURN_BATCH {
                let full = std::mem::replace(&mut self.retired, Vec::with_capacity(RETURN_BATCH));
                // A full or disconnected return queue only means this batch is freed here.
                let _ = self.give_back.try_send(full);
            }
        }
    }

    /// Tells the healthy backends that others failed, once per failing backend per flush.
    /// Failures while delivering these notices are recorded but not announced again.
    fn announce_failures(&mut self, failed: &[usize]) {
        if failed.is_empty() {
            return;
        }
        let notices: Vec<Event> = failed
            .iter()
            .map(|&i| {
                let slot = &self.slots[i];
                let last = self.pending.iter().rev().find(|f| f.backend == slot.name);
                let message = last.map_or_else(String::new, |f| f.message.clone());
                Event::new(EventType::HealthCheck, LogLevel::Basic)
                    .severity(Severity::Danger)
                    .message(format!("Backend {:?} failed: {message}", slot.name))
                    .field("rule_name", "backend_failure")
                    .field("backend", slot.name.clone())
                    .field("panicked", slot.panicked)
            })
            .collect();
        self.deliver_notices(&notices, failed);
    }

    fn announce_drops(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_dropped {
            let n = dropped - self.reported_dropped;
            self.reported_dropped = dropped;
            let notice = Event::new(EventType::HealthCheck, LogLevel::Basic)
                .severity(Severity::Warning)
                .message(format!("{n} debug-tier events were dropped because the queue was full"))
                .field("rule_name", "events_dropped")
                .field("dropped", n)
                .field("dropped_total", dropped);
            self.deliver_notices(&[notice], &[]);
        }
    }

    fn deliver_notices(&mut self, notices: &[Event], skip: &[usize]) {
        let stamped: Vec<Event>;
        let notices = if self.stamp.is_some() {
            stamped = notices
                .iter()
                .cloned()
                .map(|mut e| {
                    stamp(&mut e, self.stamp);
                    e
                })
                .collect();
            &stamped[..]
        } else {
            notices
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.panicked || skip.contains(&i) {
                continue;
            }
            slot.events += notices.len() as u64;
            if let Some(f) = call(slot, Operation::Write, notices) {
                record(&mut self.pending, f);
            }
        }
    }
}

fn call(slot: &mut Slot, op: Operation, events: &[Event]) -> Option<BackendFailure> {
    let backend = &mut slot.backend;
    let outcome = catch_unwind(AssertUnwindSafe(|| match op {
        Operation::Write => backend.write(events),
        Operation::Flush => backend.flush(),
        Operation::Close => backend.close(),
    }));
    let (message, panicked) = match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(e)) => (error_chain(&e), false),
        Err(payload) => (panic_message(&*payload), true),
    };
    slot.errors += 1;
    slot.panicked |= panicked;
    Some(BackendFailure {
        backend: slot.name.clone(),
        operation: op,
        message,
        panicked,
        occurrences: 1,
    })
}

fn error_chain(e: &BackendError) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    // `Io` already prints its source in `Display`.
    if matches!(e, BackendError::Io { .. }) {
        source = source.and_then(std::error::Error::source);
    }
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn record(pending: &mut Vec<BackendFailure>, f: BackendFailure) {
    match pending
        .iter_mut()
        .find(|p| p.backend == f.backend && p.operation == f.operation && p.panicked == f.panicked)
    {
        Some(p) => p.occurrences += 1,
        None => pending.push(f),
    }
}
