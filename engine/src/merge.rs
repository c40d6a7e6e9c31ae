//! A data set: a directory of bar files, merged into one stream in (time, symbol) order.
//!
//! The merge hands out references into the mapped files; bars are never copied here. Order key:
//! the bar's end time (`ts_event_ns + interval`), then the symbol id, then the interval, so a
//! 1-minute bar comes after the 1-second bars it covers and ties break the same way every run.
//!
//! A strategy sees one interval per symbol: [`BarSet::open_dir`] refuses a directory where a
//! symbol has files at two intervals (listing them), and [`BarSet::open_dir_filtered`] picks one.
//! Every `*.rtb` entry must be readable: a dangling or looping symlink is an error naming it.

use crate::barfile::{BarFile, BarFileError, EXTENSION, FaultKind};
use crate::records::{Bar, Interval, SymbolId};
use crate::symbols::SymbolTable;
use std::path::{Path, PathBuf};

/// One stream of the set: a file and the symbol it belongs to.
#[derive(Debug)]
pub struct Stream {
    /// The mapped file.
    pub file: BarFile,
    /// Its symbol id in the set's table.
    pub symbol: SymbolId,
}

/// A validated set of bar files with its symbol table.
#[derive(Debug)]
pub struct BarSet {
    symbols: SymbolTable,
    streams: Vec<Stream>,
}

/// Errors opening a data set.
#[derive(Debug, thiserror::Error)]
pub enum BarSetError {
    /// A file is bad.
    #[error(transparent)]
    File(#[from] BarFileError),
    /// The directory cannot be listed.
    #[error("{}: {err}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// No bar files found.
    #[error("{}: no .rtb bar files found; create some with `ringtape synth` or `ringtape import csv`", .0.display())]
    Empty(PathBuf),
    /// A `*.rtb` entry cannot be read (dangling or looping symlink, permissions, not a file).
    #[error("{}: {err} (fix or remove this entry of the data directory)", path.display())]
    Unreadable {
        /// The entry.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// A symbol has files at more than one interval and no interval was chosen.
    #[error("{}: {symbol} has bars at more than one interval ({}); a strategy must see one interval per symbol: choose one of {}", dir.display(), list_files(files), list_intervals(files))]
    MixedIntervals {
        /// The directory.
        dir: PathBuf,
        /// The first symbol with two intervals.
        symbol: String,
        /// Every file of the directory.
        files: Vec<FileInfo>,
    },
    /// No file has the chosen interval.
    #[error("{}: no bar files at interval {interval} (there are: {}); choose one of {}", dir.display(), list_files(files), list_intervals(files))]
    NoSuchInterval {
        /// The directory.
        dir: PathBuf,
        /// The interval asked for.
        interval: Interval,
        /// Every file of the directory.
        files: Vec<FileInfo>,
    },
    /// Two files hold the same symbol and interval.
    #[error("{} and {}: both hold {symbol} at the same interval; keep one", a.display(), b.display())]
    Conflict {
        /// The symbol.
        symbol: String,
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
}

/// One file of a data directory, as listed in errors: symbol, interval, bar count, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: Interval,
    /// Bars in the file.
    pub bars: u64,
    /// The file.
    pub path: PathBuf,
}

fn list_files(files: &[FileInfo]) -> String {
    let v: Vec<String> = files
        .iter()
        .map(|f| {
            let name = f.path.file_name().map_or_else(|| f.path.display().to_string(), |n| n.to_string_lossy().into());
            format!("{} {} {} bars in {name}", f.symbol, f.interval, f.bars)
        })
        .collect();
    v.join("; ")
}

fn list_intervals(files: &[FileInfo]) -> String {
    let mut v: Vec<Interval> = files.iter().map(|f| f.interval).collect();
    v.sort();
    v.dedup();
    let v: Vec<String> = v.iter().map(ToString::to_string).collect();
    v.join(", ")
}

impl BarSet {
    /// Open every `*.rtb` file in `dir` (not recursive). Files are validated in parallel on up to
    /// `threads` threads. Symbols get ids in name order, so ids do not depend on directory order.
    /// A symbol with files at two intervals is an error listing the files: pick one interval with
    /// [`BarSet::open_dir_filtered`].
    pub fn open_dir(dir: &Path, threads: usize) -> Result<BarSet, BarSetError> {
        Self::open_dir_filtered(dir, threads, None)
    }

    /// Like [`BarSet::open_dir`], keeping only the files at `interval` when it is given.
    pub fn open_dir_filtered(dir: &Path, threads: usize, interval: Option<Interval>) -> Result<BarSet, BarSetError> {
        let files = Self::open_dir_files(dir, threads)?;
        let info: Vec<FileInfo> = files
            .iter()
            .map(|f| FileInfo {
                symbol: f.header().symbol.clone(),
                interval: Interval { secs: f.header().interval_s },
                bars: f.header().count,
                path: f.path().into(),
            })
            .collect();
        let files: Vec<BarFile> = match interval {
            Some(iv) => {
                let kept: Vec<BarFile> = files.into_iter().filter(|f| f.header().interval_s == iv.secs).collect();
                if kept.is_empty() {
                    return Err(BarSetError::NoSuchInterval { dir: dir.into(), interval: iv, files: info });
                }
                kept
            }
            None => {
                // Files are sorted by (symbol, interval): a symbol twice in a row has two intervals
                // (same symbol and interval twice is the Conflict error, checked first).
                Self::check_conflicts(&files)?;
                if let Some(w) = files.windows(2).find(|w| w[0].header().symbol == w[1].header().symbol) {
                    return Err(BarSetError::MixedIntervals {
                        dir: dir.into(),
                        symbol: w[0].header().symbol.clone(),
                        files: info,
                    });
                }
                files
            }
        };
        Self::from_files(files)
    }

    /// Every bar file of `dir` at every interval, for tools that do not feed a strategy (export,
    /// viewers): a symbol may appear at several intervals.
    pub fn open_dir_all_intervals(dir: &Path, threads: usize) -> Result<BarSet, BarSetError> {
        Self::from_files(Self::open_dir_files(dir, threads)?)
    }

    fn open_dir_files(dir: &Path, threads: usize) -> Result<Vec<BarFile>, BarSetError> {
        let rd = std::fs::read_dir(dir).map_err(|err| BarSetError::Dir { path: dir.into(), err })?;
        let mut paths = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|err| BarSetError::Dir { path: dir.into(), err })?;
            let p = entry.path();
            if p.extension().is_none_or(|e| e != EXTENSION) {
                continue;
            }
            // Follows symlinks: a dangling or looping one fails here, and is named.
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => paths.push(p),
                Ok(_) => {
                    return Err(BarSetError::Unreadable { path: p, err: std::io::Error::other("not a regular file") });
                }
                Err(err) => return Err(BarSetError::Unreadable { path: p, err }),
            }
        }
        if paths.is_empty() {
            return Err(BarSetError::Empty(dir.into()));
        }
        paths.sort();
        Self::open_paths(&paths, threads)
    }

    /// Open the given files (validated in parallel). Every symbol and interval pair must be unique;
    /// a symbol may appear at several intervals (the caller chose these files).
    pub fn open_files(paths: &[PathBuf], threads: usize) -> Result<BarSet, BarSetError> {
        Self::from_files(Self::open_paths(paths, threads)?)
    }

    /// Open and validate `paths` in parallel, sorted by (symbol, interval).
    fn open_paths(paths: &[PathBuf], threads: usize) -> Result<Vec<BarFile>, BarSetError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let threads = threads.clamp(1, paths.len().max(1));
        let mut slots: Vec<Option<Result<BarFile, BarFileError>>> = (0..paths.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let chunk = paths.len().div_ceil(threads);
            for (ps, out) in paths.chunks(chunk).zip(slots.chunks_mut(chunk)) {
                s.spawn(move || {
                    for (p, o) in ps.iter().zip(out.iter_mut()) {
                        *o = Some(BarFile::open(p));
                    }
                });
            }
        });
        let mut files = Vec::with_capacity(paths.len());
        for r in slots {
            files.push(r.expect("every slot filled")?);
        }
        files.sort_by(|a, b| {
            (&a.header().symbol, a.header().interval_s).cmp(&(&b.header().symbol, b.header().interval_s))
        });
        Ok(files)
    }

    fn check_conflicts(files: &[BarFile]) -> Result<(), BarSetError> {
        for w in files.windows(2) {
            if w[0].header().symbol == w[1].header().symbol && w[0].header().interval_s == w[1].header().interval_s {
                return Err(BarSetError::Conflict {
                    symbol: w[0].header().symbol.clone(),
                    a: w[0].path().into(),
                    b: w[1].path().into(),
                });
            }
        }
        Ok(())
    }

    fn from_files(files: Vec<BarFile>) -> Result<BarSet, BarSetError> {
        Self::check_conflicts(&files)?;
        let mut symbols = SymbolTable::new();
        let mut streams = Vec::with_capacity(files.len());
        for file in files {
            let symbol = symbols.intern(&file.header().symbol).map_err(|e| {
                BarSetError::File(BarFileError {
                    path: file.path().into(),
                    offset: 24,
                    kind: FaultKind::Io(e.to_string()),
                })
            })?;
            streams.push(Stream { file, symbol });
        }
        Ok(BarSet { symbols, streams })
    }

    /// The symbol table (ids in name order).
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// The streams, sorted by (symbol, interval).
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// Total bars over all files.
    pub fn total_bars(&self) -> u64 {
        self.streams.iter().map(|s| s.file.header().count).sum()
    }

    /// XXH3 checksums of every file, in stream order: the identity of the data a run used.
    pub fn fingerprint(&self) -> Vec<(String, u32, u64, u64)> {
        self.streams
            .iter()
            .map(|s| {
                let h = s.file.header();
                (h.symbol.clone(), h.interval_s, h.count, h.data_xxh3)
            })
            .collect()
    }

    /// Iterate all bars in (end time, symbol, interval) order.
    pub fn merged(&self) -> Merged<'_> {
        Merged::new(&self.streams)
    }
}

/// One merged item.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// Symbol of the bar.
    pub symbol: SymbolId,
    /// Interval of the bar in seconds.
    pub interval_s: u32,
    /// The bar, in place in its file's mapping.
    pub bar: &'a Bar,
    /// Index of the bar's stream in [`BarSet::streams`].
    pub stream: u32,
    /// Index of the bar in its stream.
    pub index: u64,
}

#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    bars: &'a [Bar],
    pos: usize,
    interval_ns: i64,
    symbol: SymbolId,
    interval_s: u32,
}

impl Cursor<'_> {
    #[inline]
    fn key(&self) -> Key {
        match self.bars.get(self.pos) {
            Some(b) => b.ts_event_ns.saturating_add(self.interval_ns),
            None => i64::MAX,
        }
    }
}

/// The k-way merge. Few streams use a linear scan over their head keys (branch-light and fast for
/// the usual handful of symbols); many streams use a binary heap.
#[derive(Debug)]
pub struct Merged<'a> {
    cursors: Vec<Cursor<'a>>,
    keys: Vec<Key>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Key, usize)>>,
    use_heap: bool,
    remaining: u64,
    /// Linear mode: the streams whose head has the current smallest key, in index order, and how
    /// many of them were taken. With aligned bars one scan serves a whole round of symbols.
    round: [u16; LINEAR_MAX],
    round_len: usize,
    round_pos: usize,
}

const LINEAR_MAX: usize = 16;

/// How many bars ahead of a stream's cursor the merge asks the CPU to fetch (about 8 cache lines:
/// with a dozen interleaved streams the hardware prefetcher alone loses track at page boundaries).
const PREFETCH_AHEAD: usize = 10;

/// Merge key: the end time. Streams are sorted by (symbol id, interval), so among equal end
/// times the lowest stream index is the smallest (symbol, interval): ties need no extra fields.
type Key = i64;

impl<'a> Merged<'a> {
    fn new(streams: &'a [Stream]) -> Self {
        let cursors: Vec<Cursor<'a>> = streams
            .iter()
            .map(|s| Cursor {
                bars: s.file.bars(),
                pos: 0,
                interval_ns: i64::from(s.file.header().interval_s) * 1_000_000_000,
                symbol: s.symbol,
                interval_s: s.file.header().interval_s,
            })
            .collect();
        let keys: Vec<_> = cursors.iter().map(Cursor::key).collect();
        let use_heap = cursors.len() > LINEAR_MAX;
        let heap = if use_heap {
            keys.iter().enumerate().filter(|(_, k)| **k != i64::MAX).map(|(i, k)| std::cmp::Reverse((*k, i))).collect()
        } else {
            Default::default()
        };
        let remaining = cursors.iter().map(|c| c.bars.len() as u64).sum();
        Merged { cursors, keys, heap, use_heap, remaining, round: [0; LINEAR_MAX], round_len: 0, round_pos: 0 }
    }

    /// Bars not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    #[inline]
    fn take(&mut self, i: usize) -> Item<'a> {
        let c = &mut self.cursors[i];
        crate::barfile::prefetch(c.bars, c.pos + PREFETCH_AHEAD);
        let bar = &c.bars[c.pos];
        let index = c.pos as u64;
        c.pos += 1;
        self.remaining -= 1;
        Item { symbol: c.symbol, interval_s: c.interval_s, bar, stream: i as u32, index }
    }
}

impl<'a> Iterator for Merged<'a> {
    type Item = Item<'a>;

    #[inline]
    fn next(&mut self) -> Option<Item<'a>> {
        if self.remaining == 0 {
            return None;
        }
        if self.use_heap {
            let i = self.heap.peek()?.0.1;
            let item = self.take(i);
            let k = self.cursors[i].key();
            let mut top = self.heap.peek_mut()?;
            if k == i64::MAX {
                std::collections::binary_heap::PeekMut::pop(top);
            } else {
                top.0.0 = k;
            }
            Some(item)
        } else {
            if self.round_pos == self.round_len {
                // A new round: every stream whose head has the smallest end time, lowest index
                // first (the tie order). Each advances past that time when taken, so the order is
                // the same as picking the minimum one bar at a time.
                let min = self.keys.iter().copied().min().unwrap_or(i64::MAX);
                self.round_len = 0;
                self.round_pos = 0;
                for (i, &k) in self.keys.iter().enumerate() {
                    if k == min {
                        self.round[self.round_len] = i as u16;
                        self.round_len += 1;
                    }
                }
            }
            let best = usize::from(self.round[self.round_pos]);
            self.round_pos += 1;
            let item = self.take(best);
            self.keys[best] = self.cursors[best].key();
            Some(item)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barfile::write_bar_file;
    use proptest::prelude::*;

    fn bar(ts: i64) -> Bar {
        Bar { ts_event_ns: ts, open_px_e9: 10, high_px_e9: 12, low_px_e9: 9, close_px_e9: 11, volume: 1 }
    }

    fn check_merge(sets: &[Vec<i64>]) {
        let d = tempfile::tempdir().unwrap();
        // Write in reverse name order to prove ids come from names, not from write order.
        for (i, ts) in sets.iter().enumerate().rev() {
            let bars: Vec<Bar> = ts.iter().map(|&t| bar(t)).collect();
            write_bar_file(&d.path().join(format!("S{i:03}.rtb")), &format!("S{i:03}"), 60, &bars).unwrap();
        }
        let set = BarSet::open_dir(d.path(), 2).unwrap();
        let got: Vec<(i64, u32)> = set.merged().map(|it| (it.bar.ts_event_ns, it.symbol.0)).collect();
        let mut want: Vec<(i64, u32)> =
            sets.iter().enumerate().flat_map(|(i, ts)| ts.iter().map(move |&t| (t, i as u32))).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(set.total_bars() as usize, want.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn merge_is_time_then_symbol_ordered(
            sets in proptest::collection::vec(proptest::collection::btree_set(0i64..500, 0..40), 1..24)
        ) {
            let sets: Vec<Vec<i64>> = sets.into_iter().map(|s| s.into_iter().map(|t| t * 60_000_000_000).collect()).collect();
            check_merge(&sets);
        }
    }

    #[test]
    fn empty_dir_and_conflicts_are_errors() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(BarSet::open_dir(d.path(), 1), Err(BarSetError::Empty(_))));
        write_bar_file(&d.path().join("a.rtb"), "A", 60, &[bar(0)]).unwrap();
        write_bar_file(&d.path().join("b.rtb"), "A", 60, &[bar(0)]).unwrap();
        let e = BarSet::open_dir(d.path(), 1).unwrap_err().to_string();
        assert!(e.contains("both hold A"), "{e}");
    }

    #[test]
    fn a_bad_file_fails_the_set_naming_it() {
        let d = tempfile::tempdir().unwrap();
        write_bar_file(&d.path().join("a.rtb"), "A", 60, &[bar(0)]).unwrap();
        std::fs::write(d.path().join("z.rtb"), b"garbage").unwrap();
        let e = BarSet::open_dir(d.path(), 2).unwrap_err().to_string();
        assert!(e.contains("z.rtb") && e.contains("bad magic"), "{e}");
    }

    #[test]
    fn one_symbol_at_two_intervals_is_refused_unless_one_is_chosen() {
        let d = tempfile::tempdir().unwrap();
        write_bar_file(&d.path().join("A.1m.rtb"), "A", 60, &[bar(0), bar(60_000_000_000)]).unwrap();
        write_bar_file(&d.path().join("A.5m.rtb"), "A", 300, &[bar(0)]).unwrap();
        write_bar_file(&d.path().join("B.5m.rtb"), "B", 300, &[bar(0)]).unwrap();
        let e = BarSet::open_dir(d.path(), 2).unwrap_err();
        assert!(matches!(e, BarSetError::MixedIntervals { ref symbol, .. } if symbol == "A"), "{e}");
        let e = e.to_string();
        for needle in ["A 1m 2 bars in A.1m.rtb", "A 5m 1 bars in A.5m.rtb", "B 5m 1 bars in B.5m.rtb", "1m, 5m"] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
        let set = BarSet::open_dir_filtered(d.path(), 2, Some(Interval { secs: 300 })).unwrap();
        assert_eq!((set.symbols().len(), set.total_bars()), (2, 2));
        let set = BarSet::open_dir_filtered(d.path(), 2, Some(Interval { secs: 60 })).unwrap();
        assert_eq!((set.symbols().names(), set.total_bars()), (&["A".to_string()][..], 2));
        let e = BarSet::open_dir_filtered(d.path(), 2, Some(Interval { secs: 1 })).unwrap_err().to_string();
        assert!(e.contains("no bar files at interval 1s") && e.contains("choose one of 1m, 5m"), "{e}");
        // Tools that do not feed a strategy may read both.
        assert_eq!(BarSet::open_dir_all_intervals(d.path(), 2).unwrap().total_bars(), 4);
        // Different symbols at different intervals are not a mix: each strategy sees one interval.
        std::fs::remove_file(d.path().join("A.5m.rtb")).unwrap();
        assert_eq!(BarSet::open_dir(d.path(), 2).unwrap().total_bars(), 3);
    }

    #[cfg(unix)]
    #[test]
    fn dangling_and_looping_symlinks_are_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        write_bar_file(&d.path().join("A.1m.rtb"), "A", 60, &[bar(0)]).unwrap();
        std::os::unix::fs::symlink(d.path().join("gone.rtb"), d.path().join("B.1m.rtb")).unwrap();
        let e = BarSet::open_dir(d.path(), 2).unwrap_err();
        assert!(matches!(e, BarSetError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("B.1m.rtb"), "{e}");
        std::fs::remove_file(d.path().join("B.1m.rtb")).unwrap();
        std::os::unix::fs::symlink(d.path().join("C.1m.rtb"), d.path().join("C.1m.rtb")).unwrap();
        let e = BarSet::open_dir(d.path(), 2).unwrap_err().to_string();
        assert!(e.contains("C.1m.rtb"), "{e}");
        std::fs::remove_file(d.path().join("C.1m.rtb")).unwrap();
        // A symlink to a good file is fine.
        std::os::unix::fs::symlink(d.path().join("A.1m.rtb"), d.path().join("link")).unwrap();
        assert_eq!(BarSet::open_dir(d.path(), 2).unwrap().total_bars(), 1);
    }
}
