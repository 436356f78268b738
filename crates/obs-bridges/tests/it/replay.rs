//! A run stored by `obs-storage` replays into both bridges with exactly the same result as
//! the live events.

use obs_bridges::TensorBoardBridge;
use obs_bridges::wandb::read_run_file;
use obs_core::Backend;
use obs_storage::{LogReader, TieredStorage};

use crate::common;

#[test]
fn a_stored_run_replays_into_both_bridges() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("training_logs");
    let mut storage = TieredStorage::open(&logs).unwrap();
    let handle = storage.handle();
    let events = common::run(true);
    storage.write(&events).unwrap();
    storage.close().unwrap();

    let stored = || LogReader::open(handle.run_dir()).unwrap().read_all().unwrap();
    assert_eq!(stored().count(), events.len());

    let mut tb = TensorBoardBridge::create(dir.path().join("tb")).unwrap();
    assert_eq!(tb.replay(stored()).unwrap(), events.len() as u64);
    tb.close().unwrap();
    common::check_tensorboard(&crate::tensorboard::seen(
        &crate::tensorboard::read_all(tb.path())[1..],
    ));

    let mut wb = crate::wandb::demo(dir.path());
    assert_eq!(wb.replay(stored()).unwrap(), events.len() as u64);
    wb.close().unwrap();
    common::check_wandb(&read_run_file(wb.path()).unwrap(), wb.run_id(), 0);
}
