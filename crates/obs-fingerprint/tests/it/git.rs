//! Git state in real repositories made with the git CLI.

use obs_fingerprint::{FingerprintError, GitInfo, GpuProbe, TrainingFingerprint};

use crate::{git, repo_with_commit};

fn capture(dir: &std::path::Path) -> GitInfo {
    GitInfo::capture(dir, false).expect("capture").expect("inside a repository")
}

#[test]
fn outside_any_repository_is_none_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(GitInfo::capture(dir.path(), false).unwrap(), None);
    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert_eq!(fp.git, None);
    assert!(fp.format_text().contains("Git:          (not a git repository)"));
}

#[test]
fn a_missing_start_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = GitInfo::capture(&missing, false).unwrap_err();
    assert!(matches!(err, FingerprintError::Git { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn clean_repository_records_commit_and_branch() {
    let dir = repo_with_commit();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let info = capture(dir.path());
    assert_eq!(info.commit.as_deref(), Some(head.as_str()));
    assert_eq!(info.branch.as_deref(), Some("main"));
    assert!(!info.detached);
    assert!(!info.dirty);
    assert_eq!(
        (info.changed_files, info.untracked_files, info.worktree_sha256.as_deref()),
        (0, None, None)
    );
    assert_eq!(info.remote_url, None);
    assert_eq!(info.short_commit(), Some(&head[..8]));
}

#[test]
fn discovery_searches_upwards_from_a_subdirectory() {
    let dir = repo_with_commit();
    let sub = dir.path().join("src").join("deep");
    std::fs::create_dir_all(&sub).unwrap();
    let info = capture(&sub);
    assert_eq!(info.commit.as_deref(), Some(git(dir.path(), &["rev-parse", "HEAD"]).as_str()));
}

#[test]
fn repository_without_commits() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    let info = capture(dir.path());
    assert_eq!(info.commit, None);
    assert_eq!(info.branch.as_deref(), Some("main"));
    assert!(!info.detached);
    assert!(!info.dirty, "an untracked file alone is not a tracked change");
    // Staging the file makes it a tracked change against the (empty) HEAD tree.
    git(dir.path(), &["add", "a.txt"]);
    let info = capture(dir.path());
    assert!(info.dirty);
    assert_eq!(info.changed_files, 1);
    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert!(
        fp.format_text().contains("Git:          main (no commits) (dirty)"),
        "{}",
        fp.format_text()
    );
}

#[test]
fn detached_head() {
    let dir = repo_with_commit();
    let first = git(dir.path(), &["rev-parse", "HEAD"]);
    std::fs::write(dir.path().join("train.py"), "print('v2')\n").unwrap();
    git(dir.path(), &["commit", "-q", "-am", "second"]);
    git(dir.path(), &["checkout", "-q", "--detach", &first]);
    let info = capture(dir.path());
    assert!(info.detached);
    assert_eq!(info.branch, None);
    assert_eq!(info.commit.as_deref(), Some(first.as_str()));
    assert!(!info.dirty);
    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert!(fp.format_text().contains(&format!("Git:          detached@{}", &first[..8])));
}

#[test]
fn dirty_tree_is_detected_and_hashed_by_content() {
    let dir = repo_with_commit();
    let clean = capture(dir.path());
    std::fs::write(dir.path().join("train.py"), "print('changed')\n").unwrap();
    let a = capture(dir.path());
    assert!(a.dirty);
    assert_eq!(a.changed_files, 1);
    let hash_a = a.worktree_sha256.clone().expect("a dirty tree has a worktree hash");
    assert_eq!(hash_a.len(), 64);
    assert_eq!(a.commit, clean.commit, "dirtiness does not change the commit");

    // The same uncommitted content gives the same hash; different content a different one.
    assert_eq!(capture(dir.path()).worktree_sha256.as_deref(), Some(hash_a.as_str()));
    std::fs::write(dir.path().join("train.py"), "print('changed again')\n").unwrap();
    let b = capture(dir.path());
    assert!(b.dirty);
    assert_ne!(b.worktree_sha256.as_deref(), Some(hash_a.as_str()));

    // Staged changes count as well, and a deleted file is a change.
    git(dir.path(), &["add", "train.py"]);
    assert!(capture(dir.path()).dirty);
    std::fs::remove_file(dir.path().join(".gitignore")).unwrap();
    let c = capture(dir.path());
    assert_eq!(c.changed_files, 2);

    // Committing everything makes the tree clean again.
    git(dir.path(), &["commit", "-q", "-am", "third"]);
    let d = capture(dir.path());
    assert!(!d.dirty);
    assert_eq!(d.worktree_sha256, None);
}

#[test]
fn reverting_an_edit_makes_the_tree_clean() {
    let dir = repo_with_commit();
    let path = dir.path().join("train.py");
    std::fs::write(&path, "print('x')\n").unwrap();
    assert!(capture(dir.path()).dirty);
    std::fs::write(&path, "print('train')\n").unwrap();
    assert!(!capture(dir.path()).dirty, "same content as committed: only the stat changed");
}

#[test]
fn untracked_files_count_only_when_asked() {
    let dir = repo_with_commit();
    std::fs::write(dir.path().join("notes.md"), "scratch").unwrap();
    std::fs::write(dir.path().join("run.log"), "ignored by .gitignore").unwrap();
    let without = capture(dir.path());
    assert!(!without.dirty);
    assert_eq!(without.untracked_files, None);

    let with = GitInfo::capture(dir.path(), true).unwrap().unwrap();
    assert!(with.dirty);
    assert_eq!(with.changed_files, 0);
    assert_eq!(with.untracked_files, Some(1), "ignored files are not counted");
    let h1 = with.worktree_sha256.clone().unwrap();
    std::fs::write(dir.path().join("notes.md"), "other scratch").unwrap();
    let h2 = GitInfo::capture(dir.path(), true).unwrap().unwrap().worktree_sha256.unwrap();
    assert_ne!(h1, h2);

    // Through the builder.
    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .include_untracked(true)
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert_eq!(fp.git.unwrap().untracked_files, Some(1));
}

#[test]
fn remote_urls_lose_credentials() {
    let dir = repo_with_commit();
    git(
        dir.path(),
        &["remote", "add", "origin", "https://user:s3cr3t-token@example.com/org/repo.git"],
    );
    let info = capture(dir.path());
    assert_eq!(info.remote_url.as_deref(), Some("https://example.com/org/repo.git"));

    git(
        dir.path(),
        &["remote", "set-url", "origin", "https://ghp_tokenonly@example.com/org/repo.git"],
    );
    assert_eq!(capture(dir.path()).remote_url.as_deref(), Some("https://example.com/org/repo.git"));

    git(dir.path(), &["remote", "set-url", "origin", "git@example.com:org/repo.git"]);
    assert_eq!(capture(dir.path()).remote_url.as_deref(), Some("git@example.com:org/repo.git"));

    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    assert!(fp.format_text().contains("Remote:       git@example.com:org/repo.git"));
}

#[test]
fn a_token_never_reaches_json_or_text() {
    let dir = repo_with_commit();
    git(dir.path(), &["remote", "add", "origin", "https://bob:hunter2-secret@example.com/r.git"]);
    let fp = TrainingFingerprint::builder()
        .git_dir(dir.path())
        .gpu_probe(GpuProbe::disabled())
        .capture()
        .unwrap();
    for text in [fp.to_json(), fp.format_text()] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("bob"), "{text}");
    }
}
