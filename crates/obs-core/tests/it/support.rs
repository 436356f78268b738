//! Test backends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use obs_core::{Backend, BackendError, Event};

/// Records every event it receives; the test keeps a handle to the shared list.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    pub(crate) events: Arc<Mutex<Vec<Event>>>,
    pub(crate) flushes: Arc<Mutex<u32>>,
    pub(crate) closes: Arc<Mutex<u32>>,
    pub(crate) delay: Option<Duration>,
}

impl Recorder {
    pub(crate) fn slow(delay: Duration) -> Self {
        Recorder { delay: Some(delay), ..Recorder::default() }
    }

    pub(crate) fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub(crate) fn snapshot(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl Backend for Recorder {
    fn name(&self) -> &str {
        "test.recorder"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), BackendError> {
        *self.closes.lock().unwrap() += 1;
        Ok(())
    }
}

/// Fails every write with an I/O error.
#[derive(Debug)]
pub(crate) struct Failing;

impl Backend for Failing {
    fn name(&self) -> &str {
        "test.failing"
    }

    fn write(&mut self, _: &[Event]) -> Result<(), BackendError> {
        Err(BackendError::io("writing nowhere", std::io::Error::other("disk full")))
    }
}

/// Panics on the first write.
#[derive(Debug)]
pub(crate) struct Panicking;

impl Backend for Panicking {
    fn name(&self) -> &str {
        "test.panicking"
    }

    fn write(&mut self, _: &[Event]) -> Result<(), BackendError> {
        panic!("backend exploded")
    }
}
