//! Datasets read from files and directories.

use std::fs;

use obs_fingerprint::{Dataset, DatasetSource, FingerprintError, GpuProbe, TrainingFingerprint};

fn write(dir: &std::path::Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_file_hashes_its_content_not_its_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.bin", &[1, 2, 3, 4]);
    write(dir.path(), "b.bin", &[1, 2, 3, 4]);
    write(dir.path(), "c.bin", &[1, 2, 3, 5]);
    let a = Dataset::path(dir.path().join("a.bin")).hash().unwrap();
    let b = Dataset::path(dir.path().join("b.bin")).hash().unwrap();
    let c = Dataset::path(dir.path().join("c.bin")).hash().unwrap();
    assert_eq!(a.sha256, b.sha256);
    assert_ne!(a.sha256, c.sha256);
    assert_eq!((a.source, a.files, a.bytes), (DatasetSource::File, 1, 4));
    assert_eq!(a.layout.as_deref(), Some("stream-v1"));
    assert_eq!((a.shape.as_slice(), a.dtype.as_str(), a.samples), (&[4u64][..], "bytes", 4));
}

#[test]
fn declared_layout_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.f32", &[0u8; 24]);
    let d = Dataset::path(dir.path().join("x.f32")).shape(&[3, 2]).dtype("float32").hash().unwrap();
    assert_eq!((d.shape.as_slice(), d.dtype.as_str(), d.samples), (&[3u64, 2][..], "float32", 3));
    let d = Dataset::path(dir.path().join("x.f32")).samples(6).hash().unwrap();
    assert_eq!(d.samples, 6);
}

#[test]
fn a_directory_is_sorted_and_relative_paths_count() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // The same tree written in different orders hashes the same.
    for (rel, bytes) in
        [("train/0.png", &b"zero"[..]), ("train/1.png", b"one"), ("labels.csv", b"0,1")]
    {
        write(a.path(), rel, bytes);
    }
    for (rel, bytes) in
        [("labels.csv", &b"0,1"[..]), ("train/1.png", b"one"), ("train/0.png", b"zero")]
    {
        write(b.path(), rel, bytes);
    }
    let ha = Dataset::path(a.path()).hash().unwrap();
    let hb = Dataset::path(b.path()).hash().unwrap();
    assert_eq!(ha, hb);
    assert_eq!((ha.source, ha.files, ha.samples, ha.bytes), (DatasetSource::Directory, 3, 3, 10));

    // Swapping two files' contents keeps the bytes but changes the hash.
    write(b.path(), "train/0.png", b"one");
    write(b.path(), "train/1.png", b"zero");
    assert_ne!(Dataset::path(b.path()).hash().unwrap().sha256, ha.sha256);

    // Moving a file to another directory changes the hash too.
    let c = tempfile::tempdir().unwrap();
    for (rel, bytes) in
        [("train/0.png", &b"zero"[..]), ("val/1.png", b"one"), ("labels.csv", b"0,1")]
    {
        write(c.path(), rel, bytes);
    }
    assert_ne!(Dataset::path(c.path()).hash().unwrap().sha256, ha.sha256);
}

#[test]
fn an_empty_directory_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Dataset::path(dir.path()).hash().unwrap();
    assert_eq!((d.files, d.bytes, d.samples), (0, 0, 0));
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.npy");
    let err = Dataset::path(&missing).hash().unwrap_err();
    assert!(
        matches!(&err, FingerprintError::DatasetIo { path, .. } if path == &missing),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("cannot read dataset") && msg.contains("missing.npy"), "{msg}");

    // Through the builder the capture fails with the same error.
    let err = TrainingFingerprint::builder()
        .dataset(Dataset::path(&missing))
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap_err();
    assert!(matches!(err, FingerprintError::DatasetIo { .. }));
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_in_a_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.bin", b"fine");
    std::os::unix::fs::symlink(dir.path().join("gone.bin"), dir.path().join("link.bin")).unwrap();
    let err = Dataset::path(dir.path()).hash().unwrap_err();
    assert!(
        matches!(&err, FingerprintError::DatasetIo { path, .. } if path.ends_with("link.bin")),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_socket_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.bin", b"fine");
    let sock = dir.path().join("daemon.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = Dataset::path(dir.path()).hash().unwrap_err();
    assert!(
        matches!(&err, FingerprintError::DatasetNotRegular { path } if path == &sock),
        "{err:?}"
    );
    let err = Dataset::path(&sock).hash().unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_a_clear_error_when_permissions_apply() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.bin");
    fs::write(&path, b"data").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let result = Dataset::path(&path).hash();
    // Root reads every file regardless of its mode; then the file simply hashes.
    if fs::File::open(&path).is_err() {
        let err = result.unwrap_err();
        assert!(matches!(&err, FingerprintError::DatasetIo { .. }), "{err:?}");
        assert!(err.to_string().contains("secret.bin"));
    } else {
        assert_eq!(result.unwrap().bytes, 4);
    }
}

#[cfg(unix)]
#[test]
fn symlinks_to_files_are_followed_and_directory_links_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/a.bin", b"aaaa");
    std::os::unix::fs::symlink(dir.path().join("data/a.bin"), dir.path().join("data/b.bin"))
        .unwrap();
    // A link back to the parent would loop forever if followed.
    std::os::unix::fs::symlink(dir.path().join("data"), dir.path().join("data/loop")).unwrap();
    let d = Dataset::path(dir.path().join("data")).hash().unwrap();
    assert_eq!((d.files, d.bytes), (2, 8));
}

#[test]
fn progress_is_reported_for_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "big.bin", &vec![3u8; 20 * 1024 * 1024]);
    let mut calls = Vec::new();
    let fp = TrainingFingerprint::builder()
        .dataset(Dataset::path(dir.path()))
        .on_progress(|p| calls.push(p))
        .without_git()
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    let total = 20 * 1024 * 1024;
    assert!(calls.len() >= 2, "{calls:?}");
    assert_eq!(calls.last().map(|p| (p.bytes_hashed, p.bytes_total)), Some((total, total)));
    assert_eq!(fp.dataset.unwrap().bytes, total);
}
