//! Git state with `gix`: commit, branch, dirtiness, a hash of the uncommitted work, and the
//! remote URL without credentials.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use gix::bstr::{BString, ByteSlice};
use gix::status::UntrackedFiles;
use gix::status::index_worktree::Item as WorktreeItem;
use gix::status::plumbing::index_as_worktree::{Change, EntryStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FingerprintError;
use crate::hex::hex;

/// Domain tag that starts the hash of the uncommitted work.
const DIFF_TAG: &[u8] = b"obs-fingerprint:git-worktree:v1\n";

/// The state of the git repository a run was started from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GitInfo {
    /// The full hex id of the commit `HEAD` points to; `None` in a repository without commits.
    pub commit: Option<String>,
    /// The checked-out branch (`main`, `feature/x`); `None` when `HEAD` is detached.
    pub branch: Option<String>,
    /// Whether `HEAD` points straight at a commit rather than at a branch.
    pub detached: bool,
    /// Whether tracked files have staged or unstaged changes (and, when untracked files were
    /// included in the capture, whether there are untracked files).
    pub dirty: bool,
    /// Tracked paths with staged or unstaged changes.
    pub changed_files: u64,
    /// Untracked, not ignored files; `None` when the capture did not look for them.
    pub untracked_files: Option<u64>,
    /// SHA-256 of the uncommitted work (see `docs/fingerprint.md`); `None` when clean.
    pub worktree_sha256: Option<String>,
    /// The fetch URL of the default remote with any user-info removed; `None` without one.
    pub remote_url: Option<String>,
}

impl GitInfo {
    /// Discovers the repository containing `start` (searching upwards through its parents) and
    /// reads its state; `Ok(None)` when `start` is in no repository.
    ///
    /// # Errors
    /// [`FingerprintError::Git`] when `start` does not exist, or a repository was found but
    /// its `HEAD` or status cannot be read.
    pub fn capture(
        start: impl AsRef<Path>,
        include_untracked: bool,
    ) -> Result<Option<GitInfo>, FingerprintError> {
        capture(start.as_ref(), include_untracked)
    }

    /// The first 8 hex digits of the commit, for display.
    pub fn short_commit(&self) -> Option<&str> {
        self.commit.as_deref().map(|c| c.get(..8).unwrap_or(c))
    }
}

/// How a path changed, as it enters the worktree hash.
#[derive(Clone, Debug, Default)]
struct Changed {
    /// The checked-out commit of a submodule, when it is one.
    submodule_head: Option<String>,
}

fn capture(start: &Path, include_untracked: bool) -> Result<Option<GitInfo>, FingerprintError> {
    let fail = |what: &str, err: &dyn std::fmt::Display| FingerprintError::Git {
        path: start.to_path_buf(),
        message: format!("{what}: {err}"),
    };
    if !start.exists() {
        return Err(fail(
            "cannot start discovery",
            &io::Error::new(io::ErrorKind::NotFound, "the directory does not exist"),
        ));
    }
    let repo = match gix::discover(start) {
        Ok(repo) => repo,
        Err(err) if is_not_a_repository(&err) => return Ok(None),
        Err(err) => return Err(fail("cannot open the repository", &err)),
    };
    let head = repo.head().map_err(|e| fail("cannot read HEAD", &e))?;
    let commit = head.id().map(|id| id.to_string());
    let detached = head.is_detached();
    let branch = head.referent_name().map(|name| name.shorten().to_str_lossy().into_owned());
    let remote_url = remote_url(&repo);

    let mut changed: BTreeMap<BString, Changed> = BTreeMap::new();
    let mut untracked: Vec<BString> = Vec::new();
    if repo.workdir().is_some() {
        let status = repo
            .status(gix::progress::Discard)
            .map_err(|e| fail("cannot compute status", &e))?
            .untracked_files(if include_untracked {
                UntrackedFiles::Files
            } else {
                UntrackedFiles::None
            })
            .index_worktree_rewrites(None)
            .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled);
        let iter = status.into_iter(Vec::new()).map_err(|e| fail("cannot compute status", &e))?;
        for item in iter {
            let item = item.map_err(|e| fail("cannot compute status", &e))?;
            match item {
                gix::status::Item::TreeIndex(change) => {
                    changed.entry(change.location().to_owned()).or_default();
                }
                gix::status::Item::IndexWorktree(item) => match item {
                    WorktreeItem::Modification { rela_path, status, .. } => match status {
                        // Only the file's stat information changed; its content did not.
                        EntryStatus::NeedsUpdate(_) => {}
                        EntryStatus::Change(Change::SubmoduleModification(sm)) => {
                            changed.entry(rela_path).or_default().submodule_head =
                                sm.checked_out_head_id.map(|id| id.to_string());
                        }
                        _ => {
                            changed.entry(rela_path).or_default();
                        }
                    },
                    WorktreeItem::DirectoryContents { entry, .. } => {
                        if include_untracked && entry.status == gix::dir::entry::Status::Untracked {
                            untracked.push(entry.rela_path);
                        }
                    }
                    WorktreeItem::Rewrite { .. } => {
                        // Rename tracking is off, so gix reports no rewrites.
                    }
                },
            }
        }
    }

    let tracked_changes = changed.len() as u64;
    for path in &untracked {
        changed.entry(path.clone()).or_default();
    }
    let worktree_sha256 = match repo.workdir() {
        Some(workdir) if !changed.is_empty() => Some(worktree_hash(workdir, &changed)),
        _ => None,
    };
    Ok(Some(GitInfo {
        commit,
        branch,
        detached,
        dirty: tracked_changes > 0 || !untracked.is_empty(),
        changed_files: tracked_changes,
        untracked_files: include_untracked.then_some(untracked.len() as u64),
        worktree_sha256,
        remote_url,
    }))
}

fn is_not_a_repository(err: &gix::Error) -> bool {
    use gix::discover::upwards::Error as E;
    err.iter_errors().any(|e| {
        matches!(
            e.downcast_ref::<E>(),
            Some(
                E::NoGitRepository { .. }
                    | E::NoGitRepositoryWithinCeiling { .. }
                    | E::NoGitRepositoryWithinFs { .. }
            )
        )
    })
}

/// SHA-256 over the changed paths in byte order, each as
/// `u64 LE path length, path bytes, one tag byte, payload`:
/// `F` + executable byte + SHA-256 of the file content for a regular file, `L` + SHA-256 of the
/// link target for a symlink, `S` + u64 LE length + checked-out commit hex for a submodule,
/// `D` for a path missing from the work tree, `O` for anything else.
fn worktree_hash(workdir: &Path, changed: &BTreeMap<BString, Changed>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DIFF_TAG);
    for (path, change) in changed {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_slice());
        let full = match gix::path::from_bstr(path.as_bstr()) {
            Ok(rel) => workdir.join(rel),
            Err(_) => {
                hasher.update(b"O");
                continue;
            }
        };
        if let Some(head) = &change.submodule_head {
            hasher.update(b"S");
            hasher.update((head.len() as u64).to_le_bytes());
            hasher.update(head.as_bytes());
            continue;
        }
        match fs::symlink_metadata(&full) {
            Err(_) => hasher.update(b"D"),
            Ok(meta) if meta.file_type().is_symlink() => {
                hasher.update(b"L");
                let target = fs::read_link(&full).map(|t| t.into_os_string()).unwrap_or_default();
                hasher.update(Sha256::digest(target.as_encoded_bytes()));
            }
            Ok(meta) if meta.is_file() => match file_sha256(&full) {
                Ok(digest) => {
                    hasher.update(b"F");
                    hasher.update([u8::from(is_executable(&meta))]);
                    hasher.update(digest);
                }
                // Vanished or unreadable between status and hashing: record that, rather
                // than fail the whole capture.
                Err(_) => hasher.update(b"D"),
            },
            Ok(_) => hasher.update(b"O"),
        }
    }
    hex(&hasher.finalize())
}

fn file_sha256(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

fn remote_url(repo: &gix::Repository) -> Option<String> {
    // A remote that cannot be resolved is left out rather than failing the capture; its raw
    // text is never used, so a malformed URL with a token in it cannot leak.
    let remote = repo.find_default_remote(gix::remote::Direction::Fetch)?.ok()?;
    let url = remote.url(gix::remote::Direction::Fetch)?;
    Some(redact_url(url))
}

/// The URL without credentials: for `ssh` URLs (including the scp-like `git@host:repo`) the
/// user name is kept, as it names an account rather than a secret, and any password is
/// dropped; for every other scheme the whole user-info (`user:token@`) is dropped, and for
/// `http(s)` so are a query string and a fragment, where tokens are also passed.
fn redact_url(url: &gix::Url) -> String {
    let mut url = url.clone();
    url.set_password(None);
    if url.scheme != gix::url::Scheme::Ssh {
        url.set_user(None);
    }
    let mut text = url.to_bstring().to_str_lossy().into_owned();
    if matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https)
        && let Some(cut) = text.find(['?', '#'])
    {
        text.truncate(cut);
    }
    text
}

/// Parses `url` as git would and removes credentials as the fingerprint does; `None` when git
/// would not accept it as a URL.
///
/// # Examples
/// ```
/// use obs_fingerprint::redact_remote_url;
///
/// assert_eq!(
///     redact_remote_url("https://user:token@example.com/repo.git").as_deref(),
///     Some("https://example.com/repo.git")
/// );
/// assert_eq!(redact_remote_url("git@example.com:repo.git").as_deref(), Some("git@example.com:repo.git"));
/// ```
pub fn redact_remote_url(url: &str) -> Option<String> {
    gix::url::parse(url.as_bytes().as_bstr()).ok().map(|u| redact_url(&u))
}

#[cfg(test)]
mod tests {
    use super::redact_remote_url as r;

    #[test]
    fn credentials_are_removed() {
        let cases = [
            ("https://user:token@host/repo.git", "https://host/repo.git"),
            ("https://token@host/org/repo.git", "https://host/org/repo.git"),
            ("http://u:p@host:8080/r.git", "http://host:8080/r.git"),
            ("https://host/repo.git?access_token=abc#frag", "https://host/repo.git"),
            ("https://host/repo.git", "https://host/repo.git"),
            ("git@host:repo", "git@host:repo"),
            ("git@host:org/repo.git", "git@host:org/repo.git"),
            ("ssh://git@host/repo.git", "ssh://git@host/repo.git"),
            ("ssh://git:secret@host:2222/repo.git", "ssh://git@host:2222/repo.git"),
            ("git://user@host/repo.git", "git://host/repo.git"),
            ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ];
        for (input, want) in cases {
            let got = r(input);
            assert_eq!(got.as_deref(), Some(want), "{input}");
            let got = got.unwrap_or_default();
            assert!(
                !got.contains("token") && !got.contains("secret") && !got.contains(":p@"),
                "{got}"
            );
        }
    }
}
