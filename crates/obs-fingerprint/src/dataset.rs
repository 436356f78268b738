//! Dataset hashing: SHA-256 over dtype, shape and the raw little-endian bytes, never copying the
//! data. In-memory slices are hashed as a one-level tree of 1 MiB leaves on every core; files are
//! streamed.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use obs_core::{TensorData, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FingerprintError;
use crate::hex::hex;

/// Domain tag that starts every in-memory dataset hash; bump the version if the layout changes.
/// (v1 hashed the bytes as one stream; v2 hashes [`LEAF_BYTES`] leaves, which cores can share.)
const SLICE_TAG: &[u8] = b"obs-fingerprint:dataset:v2\n";
/// Bytes per leaf of an in-memory dataset hash. Part of the layout: changing it changes every
/// hash. A multiple of every element size, so leaves hold whole elements.
const LEAF_BYTES: usize = 1024 * 1024;
/// Threads that share one dataset hash at most (the caller's included): SHA-NI runs at about
/// 1 GB/s per core, and a few cores already reach the memory bandwidth of most machines.
const MAX_HASH_THREADS: usize = 8;
/// The recorded name of [`SLICE_TAG`]'s layout.
const SLICE_LAYOUT: &str = "tree-v2";
/// The recorded name of [`FILES_TAG`]'s layout.
const FILES_LAYOUT: &str = "stream-v1";
/// Domain tag that starts every file or directory dataset hash.
const FILES_TAG: &[u8] = b"obs-fingerprint:files:v1\n";
/// Bytes converted per step for element types wider than a byte: small enough to stay in L1,
/// large enough that the per-call cost of the hasher vanishes.
const CHUNK_BYTES: usize = 16 * 1024;
/// Read buffer for files.
const READ_BYTES: usize = 256 * 1024;
/// The progress callback fires at most once per this many bytes (and once at the end).
const PROGRESS_EVERY: u64 = 16 * 1024 * 1024;

/// An element type whose slices can be hashed: `f32`, `f64`, `i32`, `i64` and `u8`.
///
/// Elements are hashed as their little-endian bytes, so a hash is the same on every platform.
/// The trait is sealed: the set of types is closed.
pub trait Element: sealed::Sealed + Copy {
    /// The dtype name recorded in the fingerprint (numpy's spelling: `"float32"`, ...).
    const DTYPE: &'static str;
}

mod sealed {
    use sha2::{Digest, Sha256};

    use super::CHUNK_BYTES;

    /// A borrowed slice of one of the element types.
    #[derive(Clone, Copy, Debug)]
    pub enum Elements<'a> {
        /// `f32` elements.
        F32(&'a [f32]),
        /// `f64` elements.
        F64(&'a [f64]),
        /// `i32` elements.
        I32(&'a [i32]),
        /// `i64` elements.
        I64(&'a [i64]),
        /// Bytes.
        U8(&'a [u8]),
    }

    /// Seals [`super::Element`] and turns its slices into [`Elements`].
    pub trait Sealed: Sized {
        /// The slice, tagged with its element type.
        fn elements(data: &[Self]) -> Elements<'_>;
    }

    macro_rules! sealed {
        ($($t:ty => $v:ident),*) => {$(
            impl Sealed for $t {
                fn elements(data: &[Self]) -> Elements<'_> {
                    Elements::$v(data)
                }
            }
        )*};
    }
    sealed!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, u8 => U8);

    /// Feeds the little-endian bytes of `data` to `hasher` through a small stack buffer, so
    /// the caller's slice is never copied as a whole. The buffer is an array of byte arrays:
    /// storing whole `to_le_bytes()` values lets the compiler use plain vector loads and
    /// stores.
    macro_rules! hash_converted {
        ($data:expr, $t:ty, $hasher:expr, $on_bytes:expr) => {{
            const SIZE: usize = std::mem::size_of::<$t>();
            const N: usize = CHUNK_BYTES / SIZE;
            let mut buf = [[0u8; SIZE]; N];
            for chunk in $data.chunks(N) {
                let out = &mut buf[..chunk.len()];
                for (dst, src) in out.iter_mut().zip(chunk) {
                    *dst = src.to_le_bytes();
                }
                let bytes = out.as_flattened();
                $hasher.update(bytes);
                $on_bytes(bytes.len() as u64);
            }
        }};
    }

    /// On little-endian machines the elements in memory already are their little-endian
    /// bytes: hash them in place through a `bytemuck` view (no copy at all, the speed of a
    /// bare digest). Elsewhere convert through the stack buffer.
    macro_rules! hash_le {
        ($data:expr, $t:ty, $hasher:expr, $on_bytes:expr) => {{
            if cfg!(target_endian = "little") {
                hash_bytes(bytemuck::cast_slice::<$t, u8>($data), $hasher, $on_bytes)
            } else {
                hash_converted!($data, $t, $hasher, $on_bytes)
            }
        }};
    }

    /// Hashes bytes straight from the caller's memory, in pieces only so progress can be
    /// reported.
    fn hash_bytes(data: &[u8], hasher: &mut Sha256, on_bytes: &mut dyn FnMut(u64)) {
        for chunk in data.chunks(4 * 1024 * 1024) {
            hasher.update(chunk);
            on_bytes(chunk.len() as u64);
        }
    }

    impl Elements<'_> {
        /// Number of elements.
        pub fn len(self) -> usize {
            match self {
                Elements::F32(d) => d.len(),
                Elements::F64(d) => d.len(),
                Elements::I32(d) => d.len(),
                Elements::I64(d) => d.len(),
                Elements::U8(d) => d.len(),
            }
        }

        /// The elements `range` (element indices) of the slice.
        pub fn sub(self, range: std::ops::Range<usize>) -> Self {
            match self {
                Elements::F32(d) => Elements::F32(&d[range]),
                Elements::F64(d) => Elements::F64(&d[range]),
                Elements::I32(d) => Elements::I32(&d[range]),
                Elements::I64(d) => Elements::I64(&d[range]),
                Elements::U8(d) => Elements::U8(&d[range]),
            }
        }

        /// The dtype name.
        pub fn dtype(self) -> &'static str {
            match self {
                Elements::F32(_) => "float32",
                Elements::F64(_) => "float64",
                Elements::I32(_) => "int32",
                Elements::I64(_) => "int64",
                Elements::U8(_) => "uint8",
            }
        }

        /// Bytes per element.
        pub fn element_size(self) -> usize {
            match self {
                Elements::F32(_) | Elements::I32(_) => 4,
                Elements::F64(_) | Elements::I64(_) => 8,
                Elements::U8(_) => 1,
            }
        }

        /// Feeds the little-endian bytes to `hasher`, reporting each piece to `on_bytes`.
        pub fn hash(self, hasher: &mut Sha256, on_bytes: &mut dyn FnMut(u64)) {
            match self {
                Elements::F32(d) => hash_le!(d, f32, hasher, on_bytes),
                Elements::F64(d) => hash_le!(d, f64, hasher, on_bytes),
                Elements::I32(d) => hash_le!(d, i32, hasher, on_bytes),
                Elements::I64(d) => hash_le!(d, i64, hasher, on_bytes),
                Elements::U8(d) => hash_bytes(d, hasher, on_bytes),
            }
        }

        /// [`Elements::hash`] through the conversion buffer on every platform, so the path
        /// big-endian machines take is tested everywhere.
        #[cfg(test)]
        pub(crate) fn hash_converted(self, hasher: &mut Sha256, on_bytes: &mut dyn FnMut(u64)) {
            match self {
                Elements::F32(d) => hash_converted!(d, f32, hasher, on_bytes),
                Elements::F64(d) => hash_converted!(d, f64, hasher, on_bytes),
                Elements::I32(d) => hash_converted!(d, i32, hasher, on_bytes),
                Elements::I64(d) => hash_converted!(d, i64, hasher, on_bytes),
                Elements::U8(d) => hash_converted!(d, u8, hasher, on_bytes),
            }
        }
    }
}

use sealed::Elements;

impl Element for f32 {
    const DTYPE: &'static str = "float32";
}
impl Element for f64 {
    const DTYPE: &'static str = "float64";
}
impl Element for i32 {
    const DTYPE: &'static str = "int32";
}
impl Element for i64 {
    const DTYPE: &'static str = "int64";
}
impl Element for u8 {
    const DTYPE: &'static str = "uint8";
}

/// How far a dataset hash has got; handed to a progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashProgress {
    /// Data bytes hashed so far.
    pub bytes_hashed: u64,
    /// Data bytes to hash in all (for files, as their sizes were when hashing started).
    pub bytes_total: u64,
}

/// Where a dataset's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetSource {
    /// A borrowed in-memory slice.
    Memory,
    /// One file.
    File,
    /// Every file below a directory.
    Directory,
}

/// The recorded identity of a training dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatasetFingerprint {
    /// SHA-256 (64 lowercase hex digits) over the layout described in `docs/fingerprint.md`.
    pub sha256: String,
    /// The shape: as given for slices; for files, as declared or `[total bytes]`.
    pub shape: Vec<u64>,
    /// The element type: `float32`, `float64`, `int32`, `int64`, `uint8`, or as declared for
    /// files (`bytes` when not declared).
    pub dtype: String,
    /// Number of samples: as declared, else the first dimension of the shape (1 for a scalar);
    /// for a directory without a declared count, the number of files.
    pub samples: u64,
    /// Data bytes hashed.
    pub bytes: u64,
    /// Where the bytes came from.
    pub source: DatasetSource,
    /// Files hashed (0 for an in-memory slice).
    pub files: u64,
    /// How `sha256` was computed: `tree-v2` for in-memory slices, `stream-v1` for files and
    /// directories (see `docs/fingerprint.md`). Absent in records made before layouts were
    /// named (in-memory slices were then hashed as one stream), so a diff against one shows
    /// why the hashes of the same data differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

impl DatasetFingerprint {
    /// The first 16 hex digits of the hash, for display.
    pub fn short_hash(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }
}

#[derive(Clone, Debug)]
enum Input<'a> {
    Slice { data: Elements<'a>, shape: Vec<usize> },
    Path(PathBuf),
}

/// A dataset to fingerprint: a borrowed slice with its shape, or a file or directory.
///
/// Nothing is read until [`Dataset::hash`] (or the fingerprint capture) runs; slices are hashed
/// in place and files are streamed, so the data is never copied as a whole.
///
/// # Examples
/// ```
/// use obs_fingerprint::Dataset;
///
/// let x = vec![0.5f32; 6];
/// let fp = Dataset::slice(&x, &[3, 2]).hash()?;
/// assert_eq!((fp.dtype.as_str(), fp.shape.as_slice(), fp.samples), ("float32", &[3u64, 2][..], 3));
/// assert_eq!(fp.sha256.len(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dataset<'a> {
    input: Input<'a>,
    shape: Option<Vec<u64>>,
    dtype: Option<String>,
    samples: Option<u64>,
}

impl<'a> Dataset<'a> {
    /// A borrowed slice of `f32`, `f64`, `i32`, `i64` or `u8` with its row-major shape. The
    /// shape's product must equal the slice length (checked when hashing).
    pub fn slice<T: Element>(data: &'a [T], shape: &[usize]) -> Self {
        Self::from_input(Input::Slice { data: T::elements(data), shape: shape.to_vec() })
    }

    /// An obs-core tensor view (`f32` or `f64`), with its shape.
    pub fn tensor(view: TensorView<'a>) -> Self {
        let data = match view.data() {
            TensorData::F32(d) => Elements::F32(d),
            TensorData::F64(d) => Elements::F64(d),
        };
        Self::from_input(Input::Slice { data, shape: view.shape() })
    }

    /// A file, or a directory hashed with every file below it (sorted by relative path).
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self::from_input(Input::Path(path.into()))
    }

    fn from_input(input: Input<'a>) -> Self {
        Dataset { input, shape: None, dtype: None, samples: None }
    }

    /// Declares the shape recorded for a file dataset (ignored for slices, whose shape is
    /// given with the data). It is recorded, not hashed.
    #[must_use]
    pub fn shape(mut self, shape: &[u64]) -> Self {
        if matches!(self.input, Input::Path(_)) {
            self.shape = Some(shape.to_vec());
        }
        self
    }

    /// Declares the dtype recorded for a file dataset (ignored for slices). Recorded, not
    /// hashed.
    #[must_use]
    pub fn dtype(mut self, dtype: impl Into<String>) -> Self {
        if matches!(self.input, Input::Path(_)) {
            self.dtype = Some(dtype.into());
        }
        self
    }

    /// Declares the number of samples, overriding the default (first dimension, or the file
    /// count for a directory).
    #[must_use]
    pub fn samples(mut self, samples: u64) -> Self {
        self.samples = Some(samples);
        self
    }

    /// Hashes the dataset.
    ///
    /// # Errors
    /// [`FingerprintError::ShapeMismatch`] or [`FingerprintError::ShapeOverflow`] for a slice
    /// whose shape does not fit it; [`FingerprintError::DatasetIo`],
    /// [`FingerprintError::DatasetNotRegular`] or [`FingerprintError::DatasetChanged`] for a
    /// path that cannot be read completely.
    pub fn hash(&self) -> Result<DatasetFingerprint, FingerprintError> {
        self.hash_with_progress(&mut |_| {})
    }

    /// Hashes the dataset, calling `progress` after every 16 MiB and once at the end.
    ///
    /// # Errors
    /// As [`Dataset::hash`].
    pub fn hash_with_progress(
        &self,
        progress: &mut dyn FnMut(HashProgress),
    ) -> Result<DatasetFingerprint, FingerprintError> {
        match &self.input {
            Input::Slice { data, shape } => self.hash_slice(*data, shape, progress),
            Input::Path(path) => self.hash_path(path, progress),
        }
    }

    fn hash_slice(
        &self,
        data: Elements<'_>,
        shape: &[usize],
        progress: &mut dyn FnMut(HashProgress),
    ) -> Result<DatasetFingerprint, FingerprintError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| FingerprintError::ShapeOverflow { shape: shape.to_vec() })?;
        if expected != data.len() {
            return Err(FingerprintError::ShapeMismatch {
                shape: shape.to_vec(),
                expected,
                len: data.len(),
            });
        }
        let total = (data.len() as u64).saturating_mul(data.element_size() as u64);
        let mut hasher = Sha256::new();
        hasher.update(SLICE_TAG);
        hasher.update(data.dtype().as_bytes());
        hasher.update(b"\n");
        hasher.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            hasher.update((d as u64).to_le_bytes());
        }
        hasher.update((LEAF_BYTES as u64).to_le_bytes());
        let mut meter = Meter::new(total, progress);
        for digest in leaf_digests(data, &mut |n| meter.add(n)) {
            hasher.update(digest);
        }
        meter.finish();
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        Ok(DatasetFingerprint {
            sha256: hex(&hasher.finalize()),
            samples: self.samples.unwrap_or_else(|| shape.first().copied().unwrap_or(1)),
            shape,
            dtype: data.dtype().to_owned(),
            bytes: total,
            source: DatasetSource::Memory,
            files: 0,
            layout: Some(SLICE_LAYOUT.to_owned()),
        })
    }

    fn hash_path(
        &self,
        root: &Path,
        progress: &mut dyn FnMut(HashProgress),
    ) -> Result<DatasetFingerprint, FingerprintError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FingerprintError::DatasetIo { path, source }
        };
        let meta = fs::metadata(root).map_err(io_err(root))?;
        let (source, files) = if meta.is_file() {
            (
                DatasetSource::File,
                vec![FileEntry { rel: Vec::new(), path: root.to_path_buf(), len: meta.len() }],
            )
        } else if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(root, &mut Vec::new(), &mut files)?;
            // Byte order of the '/'-joined relative path: the same on every platform and
            // independent of the order the file system lists entries in.
            files.sort_by(|a, b| a.rel.cmp(&b.rel));
            (DatasetSource::Directory, files)
        } else {
            return Err(FingerprintError::DatasetNotRegular { path: root.to_path_buf() });
        };
        let total: u64 = files.iter().map(|f| f.len).sum();
        let mut hasher = Sha256::new();
        hasher.update(FILES_TAG);
        let mut meter = Meter::new(total, progress);
        let mut buf = vec![0u8; READ_BYTES];
        for file in &files {
            hasher.update((file.rel.len() as u64).to_le_bytes());
            hasher.update(&file.rel);
            hasher.update(file.len.to_le_bytes());
            let mut reader = File::open(&file.path).map_err(io_err(&file.path))?;
            let mut seen = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(&file.path)(e)),
                };
                seen += n as u64;
                if seen > file.len {
                    break;
                }
                hasher.update(&buf[..n]);
                meter.add(n as u64);
            }
            // The length went into the hash before the content; a file that grew or shrank
            // meanwhile would make the hash describe bytes that never existed together.
            if seen != file.len {
                return Err(FingerprintError::DatasetChanged { path: file.path.clone() });
            }
        }
        meter.finish();
        let count = files.len() as u64;
        let shape = self.shape.clone().unwrap_or_else(|| vec![total]);
        let samples = self.samples.unwrap_or(match source {
            DatasetSource::Directory => count,
            _ => shape.first().copied().unwrap_or(1),
        });
        Ok(DatasetFingerprint {
            sha256: hex(&hasher.finalize()),
            shape,
            dtype: self.dtype.clone().unwrap_or_else(|| "bytes".to_owned()),
            samples,
            bytes: total,
            source,
            files: count,
            layout: Some(FILES_LAYOUT.to_owned()),
        })
    }
}

/// The SHA-256 of every [`LEAF_BYTES`] leaf of `data`'s little-endian bytes, in order, computed
/// on up to [`MAX_HASH_THREADS`] threads (the caller's among them), reporting hashed bytes to
/// `on_bytes` on the caller's thread.
///
/// Threads claim leaves one at a time, so the work stays balanced on a busy machine, and the
/// digests do not depend on how many threads there were. A thread that cannot be started only
/// means fewer threads; a leaf whose thread died is hashed again by the caller.
fn leaf_digests(data: Elements<'_>, on_bytes: &mut dyn FnMut(u64)) -> Vec<[u8; 32]> {
    let per_leaf = LEAF_BYTES / data.element_size();
    let leaves = data.len().div_ceil(per_leaf);
    let leaf = |i: usize| data.sub(i * per_leaf..((i + 1) * per_leaf).min(data.len()));
    let digest = |i: usize| -> [u8; 32] {
        let mut h = Sha256::new();
        leaf(i).hash(&mut h, &mut |_| {});
        h.finalize().into()
    };
    let leaf_bytes = |i: usize| (leaf(i).len() * data.element_size()) as u64;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_HASH_THREADS)
        .min(leaves);
    let next = AtomicUsize::new(0);
    let hashed = AtomicU64::new(0);
    let claim = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        (i < leaves).then_some(i)
    };
    let mut digests: Vec<Option<[u8; 32]>> = vec![None; leaves];
    let mut reported = 0u64;
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("obs-hash".to_owned())
                    .spawn_scoped(s, || {
                        let mut mine = Vec::new();
                        while let Some(i) = claim() {
                            mine.push((i, digest(i)));
                            hashed.fetch_add(leaf_bytes(i), Ordering::Relaxed);
                        }
                        mine
                    })
                    .ok()
            })
            .collect();
        while let Some(i) = claim() {
            digests[i] = Some(digest(i));
            let now = hashed.fetch_add(leaf_bytes(i), Ordering::Relaxed) + leaf_bytes(i);
            on_bytes(now - reported);
            reported = now;
        }
        for helper in helpers {
            for (i, d) in helper.join().unwrap_or_default() {
                digests[i] = Some(d);
            }
        }
    });
    let all =
        digests.into_iter().enumerate().map(|(i, d)| d.unwrap_or_else(|| digest(i))).collect();
    let total = (data.len() * data.element_size()) as u64;
    on_bytes(total.saturating_sub(reported));
    all
}

struct FileEntry {
    /// Relative path, components joined with '/', as bytes (empty for a single-file dataset,
    /// so renaming or moving the file keeps its hash).
    rel: Vec<u8>,
    path: PathBuf,
    len: u64,
}

fn collect_files(
    dir: &Path,
    prefix: &mut Vec<u8>,
    out: &mut Vec<FileEntry>,
) -> Result<(), FingerprintError> {
    let io_err = |source| FingerprintError::DatasetIo { path: dir.to_path_buf(), source };
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|source| FingerprintError::DatasetIo { path: path.clone(), source })?;
        let mark = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(entry.file_name().as_encoded_bytes());
        if kind.is_dir() {
            collect_files(&path, prefix, out)?;
        } else {
            // Symlinks are followed to files; a symlink to a directory is not descended into,
            // which rules out cycles.
            let meta = fs::metadata(&path)
                .map_err(|source| FingerprintError::DatasetIo { path: path.clone(), source })?;
            if meta.is_file() {
                out.push(FileEntry { rel: prefix.clone(), path, len: meta.len() });
            } else if !(kind.is_symlink() && meta.is_dir()) {
                return Err(FingerprintError::DatasetNotRegular { path });
            }
        }
        prefix.truncate(mark);
    }
    Ok(())
}

/// Counts hashed bytes and calls the progress callback at most every [`PROGRESS_EVERY`] bytes.
struct Meter<'p> {
    done: u64,
    total: u64,
    next: u64,
    progress: &'p mut dyn FnMut(HashProgress),
}

impl<'p> Meter<'p> {
    fn new(total: u64, progress: &'p mut dyn FnMut(HashProgress)) -> Self {
        Meter { done: 0, total, next: PROGRESS_EVERY, progress }
    }

    fn add(&mut self, n: u64) {
        self.done += n;
        if self.done >= self.next {
            self.next = self.done + PROGRESS_EVERY;
            (self.progress)(HashProgress { bytes_hashed: self.done, bytes_total: self.total });
        }
    }

    fn finish(self) {
        (self.progress)(HashProgress { bytes_hashed: self.done, bytes_total: self.total });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented layout, computed the plain way: one thread, the bytes already in hand.
    fn reference_slice_hash(dtype: &str, shape: &[u64], le_bytes: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(b"obs-fingerprint:dataset:v2\n");
        h.update(dtype.as_bytes());
        h.update(b"\n");
        h.update((shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update(d.to_le_bytes());
        }
        h.update(1_048_576u64.to_le_bytes());
        for leaf in le_bytes.chunks(1_048_576) {
            h.update(Sha256::digest(leaf));
        }
        hex(&h.finalize())
    }

    #[test]
    fn leaves_split_at_one_mebibyte_whatever_the_element_width() {
        // 2.5 MiB: two full leaves and a half one, for 1-, 4- and 8-byte elements.
        let n = 5 * 1024 * 1024 / 2;
        let u: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let got = Dataset::slice(&u, &[n]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("uint8", &[n as u64], &u));
        let f: Vec<f32> = (0..n / 4).map(|i| i as f32 * 0.5).collect();
        let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = Dataset::slice(&f, &[n / 4]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("float32", &[(n / 4) as u64], &bytes));
        let l: Vec<i64> = (0..n as i64 / 8).map(|i| i * -3).collect();
        let bytes: Vec<u8> = l.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = Dataset::slice(&l, &[n / 16, 2]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("int64", &[(n / 16) as u64, 2], &bytes));
        // An exact multiple of the leaf size has no empty trailing leaf.
        let exact = vec![3u8; 2 * 1_048_576];
        let got = Dataset::slice(&exact, &[exact.len()]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("uint8", &[exact.len() as u64], &exact));
    }

    #[test]
    fn every_leaf_is_hashed_once_and_progress_adds_up() {
        let d: Vec<f64> = (0..700_000).map(f64::from).collect();
        let mut seen = Vec::new();
        let digests = leaf_digests(Elements::F64(&d), &mut |n| seen.push(n));
        let bytes: Vec<u8> = d.iter().flat_map(|v| v.to_le_bytes()).collect();
        let expected: Vec<[u8; 32]> =
            bytes.chunks(LEAF_BYTES).map(|c| Sha256::digest(c).into()).collect();
        assert_eq!(digests, expected);
        assert_eq!(seen.iter().sum::<u64>(), bytes.len() as u64);
        assert!(leaf_digests(Elements::F32(&[]), &mut |_| {}).is_empty());
    }

    #[test]
    fn an_empty_slice_hashes_to_its_header() {
        let got = Dataset::slice::<f32>(&[], &[0, 3]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("float32", &[0, 3], &[]));
        assert_eq!((got.bytes, got.samples), (0, 0));
    }

    #[test]
    fn slice_hash_is_the_documented_layout_for_every_dtype() {
        // Long enough to cross a chunk boundary for every element width.
        let f: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.25 - 7.0).collect();
        let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = Dataset::slice(&f, &[100, 100]).hash().unwrap();
        assert_eq!(got.sha256, reference_slice_hash("float32", &[100, 100], &bytes));
        assert_eq!((got.bytes, got.samples, got.files), (40_000, 100, 0));

        let d: Vec<f64> = (0..5000).map(|i| f64::from(i).sqrt()).collect();
        let bytes: Vec<u8> = d.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Dataset::slice(&d, &[5000]).hash().unwrap().sha256,
            reference_slice_hash("float64", &[5000], &bytes)
        );
        let i: Vec<i32> = (-3000..3000).collect();
        let bytes: Vec<u8> = i.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Dataset::slice(&i, &[6000]).hash().unwrap().sha256,
            reference_slice_hash("int32", &[6000], &bytes)
        );
        let l: Vec<i64> = (-3000..3000).map(|v| v * 1_000_000_007).collect();
        let bytes: Vec<u8> = l.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Dataset::slice(&l, &[3, 2000]).hash().unwrap().sha256,
            reference_slice_hash("int64", &[3, 2000], &bytes)
        );
        let u: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        assert_eq!(
            Dataset::slice(&u, &[70_000]).hash().unwrap().sha256,
            reference_slice_hash("uint8", &[70_000], &u)
        );
    }

    #[test]
    fn in_place_and_converted_bytes_agree() {
        let f: Vec<f32> = (0..9000).map(|i| i as f32 / 3.0 - 100.0).collect();
        let d: Vec<f64> = (0..9000).map(|i| f64::from(i).ln_1p()).collect();
        let i: Vec<i32> = (-4500..4500).collect();
        let l: Vec<i64> = (-4500..4500).map(|v| v << 40).collect();
        let u: Vec<u8> = (0..=255).cycle().take(20_000).collect();
        for e in [
            Elements::F32(&f),
            Elements::F64(&d),
            Elements::I32(&i),
            Elements::I64(&l),
            Elements::U8(&u),
        ] {
            let (mut a, mut b) = (Sha256::new(), Sha256::new());
            let (mut na, mut nb) = (0u64, 0u64);
            e.hash(&mut a, &mut |n| na += n);
            e.hash_converted(&mut b, &mut |n| nb += n);
            assert_eq!(a.finalize(), b.finalize(), "{}", e.dtype());
            assert_eq!(
                (na, nb),
                ((e.len() * e.element_size()) as u64, (e.len() * e.element_size()) as u64)
            );
        }
    }

    #[test]
    fn known_answer_pins_the_layout() {
        // Pinned (the hex computed with Python's hashlib) so that a change of the hashing layout
        // cannot go unnoticed: recorded fingerprints would silently stop matching new ones.
        let got = Dataset::slice(&[1.0f32, 2.0], &[2]).hash().unwrap();
        let mut h = Sha256::new();
        h.update(b"obs-fingerprint:dataset:v2\nfloat32\n");
        h.update([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        h.update([0, 0, 0x10, 0, 0, 0, 0, 0]);
        h.update(Sha256::digest([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]));
        assert_eq!(got.sha256, hex(&h.finalize()));
        assert_eq!(got.sha256, "3a42ea1ea679a0b0fd764243fe83dad8b20b0b1ac3149c9e3ae1b0792b37c35b");
    }

    #[test]
    fn shape_and_dtype_change_the_hash_but_not_the_bytes() {
        let x = [0u8; 12];
        let a = Dataset::slice(&x, &[3, 4]).hash().unwrap();
        let b = Dataset::slice(&x, &[4, 3]).hash().unwrap();
        let c = Dataset::slice(&[0i32; 3], &[3, 1]).hash().unwrap();
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.bytes, c.bytes);
        assert_ne!(a.sha256, c.sha256);
    }

    #[test]
    fn nan_payloads_are_hashed_as_bits() {
        let a = Dataset::slice(&[f32::NAN, 1.0], &[2]).hash().unwrap();
        let b = Dataset::slice(&[f32::from_bits(0x7fc0_0001), 1.0], &[2]).hash().unwrap();
        assert_ne!(a.sha256, b.sha256, "different bit patterns are different data");
        let c = Dataset::slice(&[f32::NAN, 1.0], &[2]).hash().unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = [1.0f64; 6];
        assert!(matches!(
            Dataset::slice(&x, &[4, 2]).hash(),
            Err(FingerprintError::ShapeMismatch { expected: 8, len: 6, .. })
        ));
        assert!(matches!(
            Dataset::slice(&x, &[usize::MAX, 2]).hash(),
            Err(FingerprintError::ShapeOverflow { .. })
        ));
        let empty: [f32; 0] = [];
        let e = Dataset::slice(&empty, &[0, 784]).hash().unwrap();
        assert_eq!((e.samples, e.bytes), (0, 0));
        let scalar = Dataset::slice(&[3i64], &[]).hash().unwrap();
        assert_eq!((scalar.samples, scalar.shape.len()), (1, 0));
    }

    #[test]
    fn tensor_views_hash_like_slices() {
        let x = vec![0.1f32; 8];
        let shape = [2, 4];
        let view = TensorView::new(&x, &shape).unwrap();
        assert_eq!(
            Dataset::tensor(view).hash().unwrap(),
            Dataset::slice(&x, &shape).hash().unwrap()
        );
    }

    #[test]
    fn progress_reaches_the_total_and_is_monotonic() {
        let x = vec![7u8; 40 * 1024 * 1024 + 3];
        let mut seen = Vec::new();
        Dataset::slice(&x, &[x.len()]).hash_with_progress(&mut |p| seen.push(p)).unwrap();
        assert!(seen.len() >= 3, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].bytes_hashed <= w[1].bytes_hashed));
        let last = seen.last().unwrap();
        assert_eq!((last.bytes_hashed, last.bytes_total), (x.len() as u64, x.len() as u64));
    }

    #[test]
    fn file_declarations_apply_to_files_only() {
        let x = [1.0f32; 4];
        let d =
            Dataset::slice(&x, &[2, 2]).shape(&[9]).dtype("bfloat16").samples(5).hash().unwrap();
        assert_eq!(
            (d.shape.as_slice(), d.dtype.as_str(), d.samples),
            (&[2u64, 2][..], "float32", 5)
        );
    }
}
