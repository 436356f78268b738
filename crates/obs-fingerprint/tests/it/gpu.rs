//! GPU probing: nvidia-smi first, then the DRM class directory; none when neither finds one.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use obs_fingerprint::{GpuProbe, Hardware, TrainingFingerprint};

fn card(root: &Path, name: &str, vendor: &str, device: &str) {
    let dev = root.join(name).join("device");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
    fs::write(dev.join("device"), format!("{device}\n")).unwrap();
}

fn drm_only(root: &Path) -> GpuProbe {
    let mut probe = GpuProbe::disabled();
    probe.drm_class_dir = Some(root.to_path_buf());
    probe
}

#[test]
fn no_gpu_is_recorded_as_none() {
    let empty = tempfile::tempdir().unwrap();
    let mut probe = drm_only(empty.path());
    probe.nvidia_smi = Some(empty.path().join("no-such-nvidia-smi"));
    probe.nvidia_smi_timeout = Duration::from_secs(1);
    assert!(probe.probe().is_empty());
    // A DRM directory that does not exist (no display subsystem at all) is no GPU either.
    assert!(drm_only(&empty.path().join("absent")).probe().is_empty());

    let fp = TrainingFingerprint::builder().without_git().gpu_probe(probe).capture().unwrap();
    assert!(fp.hardware.gpus.is_empty());
    assert!(fp.format_text().contains("GPU:          None\n"));
    assert!(fp.to_json().contains("\"gpus\": []"));
}

#[test]
fn drm_cards_are_named_by_vendor_in_card_order() {
    let root = tempfile::tempdir().unwrap();
    card(root.path(), "card10", "0x8086", "0x46a6");
    card(root.path(), "card2", "0x10de", "0x2504");
    card(root.path(), "card3", "0xabcd", "0x0001");
    // Connectors and render nodes are not devices of their own.
    card(root.path(), "card2-HDMI-A-1", "0x10de", "0x2504");
    card(root.path(), "renderD128", "0x10de", "0x2504");
    fs::create_dir_all(root.path().join("card4").join("device")).unwrap();
    assert_eq!(
        drm_only(root.path()).probe(),
        ["NVIDIA [10de:2504]", "PCI vendor abcd [abcd:0001]", "Intel [8086:46a6]"]
    );
}

/// A stand-in `nvidia-smi`: runs `body` when called with the probe's arguments.
#[cfg(unix)]
fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-nvidia-smi");
    fs::write(&path, format!("#!/bin/sh\n[ \"$1\" = --query-gpu=name ] || exit 0\n{body}\n"))
        .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    // Another test thread may fork while the script's write handle is open; the child holds it
    // until it execs, and running the script meanwhile fails with ETXTBSY. Wait until it runs
    // (called without arguments it exits at once).
    for _ in 0..200 {
        match std::process::Command::new(&path).output() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
    path
}

#[cfg(unix)]
#[test]
fn nvidia_smi_names_win_over_drm() {
    let dir = tempfile::tempdir().unwrap();
    card(dir.path(), "card0", "0x10de", "0x2504");
    let mut probe = drm_only(dir.path());
    probe.nvidia_smi = Some(script(
        dir.path(),
        "echo 'NVIDIA GeForce RTX 3060'; echo ''; echo 'NVIDIA A100-SXM4-40GB'",
    ));
    assert_eq!(probe.probe(), ["NVIDIA GeForce RTX 3060", "NVIDIA A100-SXM4-40GB"]);
    let hw = Hardware::capture(&probe);
    assert_eq!(hw.gpus.len(), 2);
}

#[cfg(unix)]
#[test]
fn a_failing_nvidia_smi_falls_back_to_drm() {
    let dir = tempfile::tempdir().unwrap();
    card(dir.path(), "card0", "0x1002", "0x73bf");
    let mut probe = drm_only(dir.path());
    probe.nvidia_smi = Some(script(dir.path(), "echo 'driver mismatch' >&2; exit 9"));
    assert_eq!(probe.probe(), ["AMD [1002:73bf]"]);
}

#[cfg(unix)]
#[test]
fn a_hanging_nvidia_smi_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut probe = GpuProbe::disabled();
    probe.nvidia_smi = Some(script(dir.path(), "exec sleep 30"));
    probe.nvidia_smi_timeout = Duration::from_millis(200);
    let start = Instant::now();
    assert!(probe.probe().is_empty());
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
}
