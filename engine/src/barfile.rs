//! Bar files: a self-describing, versioned on-disk format read zero-copy through `memmap2`.
//!
//! # Layout (version 1, little endian)
//! ```text
//! offset size field
//!      0    8 magic            b"RTBARS\0\x01"
//!      8    2 version          1
//!     10    2 record_kind      1 = Bar (48 bytes: ts_event_ns, open, high, low, close px_e9, volume)
//!     12    2 record_size      48
//!     14    2 header_len       128 (records start here; a multiple of 64)
//!     16    4 interval_s       bar length in seconds
//!     20    4 symbol_len       bytes used in `symbol`
//!     24   32 symbol           ASCII, zero padded
//!     56    8 count            number of records
//!     64    8 ts_first_ns      first bar's start (0 when empty)
//!     72    8 ts_last_ns       last bar's start (0 when empty)
//!     80    8 schema_hash      XXH3-64 of the record layout description, see [`SCHEMA`]
//!     88    8 data_xxh3        XXH3-64 of the record bytes
//!     96   24 reserved         zero
//!    120    8 header_xxh3      XXH3-64 of bytes 0..120
//!    128    - records          count * record_size bytes, nothing after them
//! ```
//! One symbol and one interval per file; a directory of files is a data set ([`crate::merge`]).
//!
//! # Rules
//! - Records are sorted by `ts_event_ns`, strictly increasing (no duplicates), every price > 0,
//!   `low <= open, close <= high`. Writers refuse anything else; readers check everything before a
//!   single record is used, and name the file and byte offset of the first fault.
//! - Files are written to a temporary name in the same directory and renamed into place, never
//!   modified or truncated in place: this is what makes mapping them sound (see [`BarFile::open`]).

use crate::records::Bar;
use crate::symbols::{MAX_SYMBOL_LEN, check_symbol};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

/// File magic.
pub const MAGIC: [u8; 8] = *b"RTBARS\0\x01";
/// Current format version.
pub const VERSION: u16 = 1;
/// Record kind of [`Bar`] records.
pub const KIND_BAR: u16 = 1;
/// Header length: records start at this offset.
pub const HEADER_LEN: usize = 128;
/// File extension of bar files.
pub const EXTENSION: &str = "rtb";
/// The record layout description whose hash is stored in the header.
pub const SCHEMA: &str = "Bar{ts_event_ns:i64,open_px_e9:i64,high_px_e9:i64,low_px_e9:i64,close_px_e9:i64,volume:u64}";

/// Hash of [`SCHEMA`].
pub fn schema_hash() -> u64 {
    xxh3_64(SCHEMA.as_bytes())
}

/// What is wrong with a bar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Could not be read or written.
    Io(String),
    /// Shorter than its header or its declared record count.
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Bytes after the last record.
    TrailingBytes(u64),
    /// Not a ringtape bar file.
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion(u16),
    /// Unknown record kind or size.
    BadRecordLayout {
        /// Kind in the header.
        kind: u16,
        /// Size in the header.
        size: u16,
    },
    /// The header checksum does not match (header corrupted).
    HeaderChecksum,
    /// The record checksum does not match (data corrupted).
    DataChecksum,
    /// The schema hash does not match this build's record layout.
    SchemaMismatch,
    /// A header field is invalid.
    BadHeader(&'static str),
    /// A bar's time is not after the previous bar's.
    Unsorted {
        /// Previous bar time.
        prev_ns: i64,
        /// This bar's time.
        ts_ns: i64,
    },
    /// Two bars have the same time.
    Duplicate(i64),
    /// A bar fails the price invariants.
    BadBar(&'static str),
    /// The header's time range or count disagrees with the records.
    HeaderMismatch(&'static str),
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultKind::Io(e) => write!(f, "{e}"),
            FaultKind::Truncated { expected, actual } => {
                write!(f, "truncated: {actual} bytes, header says {expected}; re-create it with `ringtape import`")
            }
            FaultKind::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the last record"),
            FaultKind::BadMagic => write!(f, "not a ringtape bar file (bad magic)"),
            FaultKind::UnsupportedVersion(v) => {
                write!(f, "format version {v} is not supported (this build reads {VERSION})")
            }
            FaultKind::BadRecordLayout { kind, size } => {
                write!(f, "unknown record kind {kind} / size {size}")
            }
            FaultKind::HeaderChecksum => write!(f, "header checksum mismatch (file corrupted)"),
            FaultKind::DataChecksum => write!(f, "record checksum mismatch (file corrupted)"),
            FaultKind::SchemaMismatch => write!(f, "record schema hash differs from this build's"),
            FaultKind::BadHeader(what) => write!(f, "invalid header: {what}"),
            FaultKind::Unsorted { prev_ns, ts_ns } => {
                write!(f, "bar at {ts_ns} ns is not after the previous bar at {prev_ns} ns")
            }
            FaultKind::Duplicate(ts) => write!(f, "duplicate bar at {ts} ns"),
            FaultKind::BadBar(what) => write!(f, "invalid bar: {what}"),
            FaultKind::HeaderMismatch(what) => write!(f, "header disagrees with records: {what}"),
        }
    }
}

/// An error naming the file and the byte offset of the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: byte {offset}: {kind}", path.display())]
pub struct BarFileError {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the fault (0 for whole-file faults).
    pub offset: u64,
    /// What is wrong.
    pub kind: FaultKind,
}

fn err(path: &Path, offset: u64, kind: FaultKind) -> BarFileError {
    BarFileError { path: path.to_path_buf(), offset, kind }
}

/// The decoded header of a bar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Bar length in seconds.
    pub interval_s: u32,
    /// The symbol.
    pub symbol: String,
    /// Number of bars.
    pub count: u64,
    /// First bar start (0 when empty).
    pub ts_first_ns: i64,
    /// Last bar start (0 when empty).
    pub ts_last_ns: i64,
    /// XXH3-64 of the record bytes.
    pub data_xxh3: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&KIND_BAR.to_le_bytes());
        h[12..14].copy_from_slice(&48u16.to_le_bytes());
        h[14..16].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[16..20].copy_from_slice(&self.interval_s.to_le_bytes());
        h[20..24].copy_from_slice(&(self.symbol.len() as u32).to_le_bytes());
        h[24..24 + self.symbol.len()].copy_from_slice(self.symbol.as_bytes());
        h[56..64].copy_from_slice(&self.count.to_le_bytes());
        h[64..72].copy_from_slice(&self.ts_first_ns.to_le_bytes());
        h[72..80].copy_from_slice(&self.ts_last_ns.to_le_bytes());
        h[80..88].copy_from_slice(&schema_hash().to_le_bytes());
        h[88..96].copy_from_slice(&self.data_xxh3.to_le_bytes());
        let hh = xxh3_64(&h[..120]);
        h[120..128].copy_from_slice(&hh.to_le_bytes());
        h
    }

    /// Decode and check a header (everything but the records).
    fn decode(path: &Path, b: &[u8]) -> Result<Header, BarFileError> {
        if b.len() < HEADER_LEN {
            if b.len() < 8 || b[..8] != MAGIC {
                return Err(err(path, 0, FaultKind::BadMagic));
            }
            return Err(err(
                path,
                b.len() as u64,
                FaultKind::Truncated { expected: HEADER_LEN as u64, actual: b.len() as u64 },
            ));
        }
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        if b[..8] != MAGIC {
            return Err(err(path, 0, FaultKind::BadMagic));
        }
        let version = u16_at(8);
        if version != VERSION {
            return Err(err(path, 8, FaultKind::UnsupportedVersion(version)));
        }
        if xxh3_64(&b[..120]) != u64_at(120) {
            return Err(err(path, 120, FaultKind::HeaderChecksum));
        }
        let (kind, size) = (u16_at(10), u16_at(12));
        if kind != KIND_BAR || size != 48 {
            return Err(err(path, 10, FaultKind::BadRecordLayout { kind, size }));
        }
        if usize::from(u16_at(14)) != HEADER_LEN {
            return Err(err(path, 14, FaultKind::BadHeader("header_len must be 128")));
        }
        if u64_at(80) != schema_hash() {
            return Err(err(path, 80, FaultKind::SchemaMismatch));
        }
        let interval_s = u32_at(16);
        if interval_s == 0 {
            return Err(err(path, 16, FaultKind::BadHeader("interval is 0")));
        }
        let sym_len = u32_at(20) as usize;
        if sym_len == 0 || sym_len > MAX_SYMBOL_LEN {
            return Err(err(path, 20, FaultKind::BadHeader("symbol length out of range")));
        }
        let symbol = std::str::from_utf8(&b[24..24 + sym_len])
            .ok()
            .filter(|s| check_symbol(s).is_ok())
            .ok_or_else(|| err(path, 24, FaultKind::BadHeader("symbol is not a valid name")))?
            .to_string();
        Ok(Header {
            interval_s,
            symbol,
            count: u64_at(56),
            ts_first_ns: u64_at(64) as i64,
            ts_last_ns: u64_at(72) as i64,
            data_xxh3: u64_at(88),
        })
    }
}

/// Check the record invariants of `bars`; the error offset is relative to the first record.
fn check_bars(bars: &[Bar]) -> Result<(), (u64, FaultKind)> {
    let mut prev = i64::MIN;
    for (i, b) in bars.iter().enumerate() {
        let off = (i * 48) as u64;
        if b.ts_event_ns <= prev {
            let kind = if b.ts_event_ns == prev {
                FaultKind::Duplicate(prev)
            } else {
                FaultKind::Unsorted { prev_ns: prev, ts_ns: b.ts_event_ns }
            };
            return Err((off, kind));
        }
        if let Err(f) = b.validate() {
            return Err((off + 8, FaultKind::BadBar(f.as_str())));
        }
        prev = b.ts_event_ns;
    }
    Ok(())
}

/// Write `bars` of one symbol to `path` atomically: a temporary file in the same directory,
/// flushed and synced, then renamed over `path`. Refuses bars that break the file's rules.
pub fn write_bar_file(path: &Path, symbol: &str, interval_s: u32, bars: &[Bar]) -> Result<Header, BarFileError> {
    check_symbol(symbol).map_err(|e| err(path, 0, FaultKind::Io(e.to_string())))?;
    if interval_s == 0 {
        return Err(err(path, 16, FaultKind::BadHeader("interval is 0")));
    }
    check_bars(bars).map_err(|(o, k)| err(path, HEADER_LEN as u64 + o, k))?;
    let data: &[u8] = bytemuck::cast_slice(bars);
    let header = Header {
        interval_s,
        symbol: symbol.to_string(),
        count: bars.len() as u64,
        ts_first_ns: bars.first().map_or(0, |b| b.ts_event_ns),
        ts_last_ns: bars.last().map_or(0, |b| b.ts_event_ns),
        data_xxh3: xxh3_64(data),
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |e: std::io::Error| err(path, 0, FaultKind::Io(e.to_string()));
    let file_name = path.file_name().ok_or_else(|| err(path, 0, FaultKind::Io("not a file path".into())))?;
    let tmp = dir.join(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&header.encode())?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(header)
}

/// A validated, memory-mapped bar file. The bars are read in place: no parsing, no copying.
#[derive(Debug)]
pub struct BarFile {
    path: PathBuf,
    header: Header,
    map: Option<memmap2::Mmap>,
}

impl BarFile {
    /// Map and validate a bar file: header, checksums, record count against the file length, and
    /// every record's ordering and prices. Errors name the file and the byte offset.
    #[allow(unsafe_code)] // the codebase's one mmap call
    pub fn open(path: &Path) -> Result<BarFile, BarFileError> {
        let io = |e: std::io::Error| err(path, 0, FaultKind::Io(e.to_string()));
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private to this process. Bar files are only ever
            // produced by `write_bar_file`, which writes a temporary file and renames it into place,
            // so a mapped file is never modified or truncated while mapped (a writer replacing it
            // creates a new inode; ours stays intact). Users editing a bar file in place break this
            // documented rule of the format. Everything read from the map is validated below before
            // use, so corrupt contents cannot cause undefined behaviour, only errors.
            Some(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let header = Header::decode(path, bytes)?;
        let expected = HEADER_LEN as u64 + header.count * 48;
        if (bytes.len() as u64) < expected {
            return Err(err(path, bytes.len() as u64, FaultKind::Truncated { expected, actual: len }));
        }
        if bytes.len() as u64 > expected {
            return Err(err(path, expected, FaultKind::TrailingBytes(len - expected)));
        }
        let data = &bytes[HEADER_LEN..];
        if xxh3_64(data) != header.data_xxh3 {
            return Err(err(path, HEADER_LEN as u64, FaultKind::DataChecksum));
        }
        let bf = BarFile { path: path.to_path_buf(), header, map };
        check_bars(bf.bars()).map_err(|(o, k)| err(path, HEADER_LEN as u64 + o, k))?;
        let bars = bf.bars();
        let (first, last) = (bars.first().map_or(0, |b| b.ts_event_ns), bars.last().map_or(0, |b| b.ts_event_ns));
        if first != bf.header.ts_first_ns || last != bf.header.ts_last_ns {
            return Err(err(path, 64, FaultKind::HeaderMismatch("time range")));
        }
        Ok(bf)
    }

    /// The bars, in place in the mapping.
    #[inline]
    pub fn bars(&self) -> &[Bar] {
        match &self.map {
            Some(m) => bytemuck::cast_slice(&m[HEADER_LEN..]),
            None => &[],
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Ask the CPU to start loading bar `i` of `bars` into cache (a hint; out-of-range indices are
/// ignored). Used by the merge, which reads a dozen streams of mapped bars at once.
#[inline(always)]
#[allow(unsafe_code)] // a cache hint: the one unsafe call besides the mmap
pub fn prefetch(bars: &[Bar], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bars.get(i) {
        // SAFETY: `_mm_prefetch` is a hint that never faults and does not read memory
        // architecturally; the pointer comes from a live `&Bar` anyway. SSE is part of the
        // x86_64 baseline, so the target feature is always present.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((b as *const Bar).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bars, i);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn bar(ts: i64, px: i64) -> Bar {
        Bar { ts_event_ns: ts, open_px_e9: px, high_px_e9: px + 2, low_px_e9: px - 1, close_px_e9: px + 1, volume: 100 }
    }

    fn write_sample(dir: &Path) -> PathBuf {
        let p = dir.join("AAPL.1m.rtb");
        let bars: Vec<Bar> = (0..10).map(|i| bar(i * 60_000_000_000, 100_000_000_000 + i)).collect();
        write_bar_file(&p, "AAPL", 60, &bars).unwrap();
        p
    }

    fn fault(p: &Path) -> (u64, FaultKind) {
        let e = BarFile::open(p).unwrap_err();
        assert_eq!(e.path, p);
        (e.offset, e.kind)
    }

    #[test]
    fn round_trip_is_exact_and_zero_copy() {
        let d = tempfile::tempdir().unwrap();
        let p = write_sample(d.path());
        let f = BarFile::open(&p).unwrap();
        assert_eq!(f.header().symbol, "AAPL");
        assert_eq!(f.header().interval_s, 60);
        assert_eq!(f.header().count, 10);
        assert_eq!(f.bars()[3], bar(180_000_000_000, 100_000_000_003));
        // The slice points into the mapping, not a copy.
        assert_eq!(std::mem::size_of_val(f.bars()), 480);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_file_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("X.rtb");
        write_bar_file(&p, "X", 1, &[]).unwrap();
        assert!(BarFile::open(&p).unwrap().bars().is_empty());
    }

    #[test]
    fn truncated_file_is_rejected_with_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = write_sample(d.path());
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let (off, kind) = fault(&p);
        assert_eq!(off, bytes.len() as u64 - 10);
        assert!(matches!(kind, FaultKind::Truncated { expected, .. } if expected == bytes.len() as u64));
        std::fs::write(&p, &bytes[..50]).unwrap();
        assert!(matches!(fault(&p).1, FaultKind::Truncated { .. }));
        let msg = BarFile::open(&p).unwrap_err().to_string();
        assert!(msg.contains("AAPL.1m.rtb") && msg.contains("byte 50") && msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn corruption_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let p = write_sample(d.path());
        let good = std::fs::read(&p).unwrap();
        // Flip a bit in a record.
        let mut b = good.clone();
        b[HEADER_LEN + 100] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(fault(&p), (HEADER_LEN as u64, FaultKind::DataChecksum));
        // Flip a bit in the header.
        let mut b = good.clone();
        b[60] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(fault(&p), (120, FaultKind::HeaderChecksum));
        // Wrong magic and version.
        let mut b = good.clone();
        b[0] = b'X';
        std::fs::write(&p, &b).unwrap();
        assert_eq!(fault(&p), (0, FaultKind::BadMagic));
        let mut b = good.clone();
        b[8] = 9;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(fault(&p), (8, FaultKind::UnsupportedVersion(9)));
        // Trailing garbage.
        let mut b = good.clone();
        b.extend_from_slice(&[0; 5]);
        std::fs::write(&p, &b).unwrap();
        assert_eq!(fault(&p), (good.len() as u64, FaultKind::TrailingBytes(5)));
    }

    /// Forge a file whose checksums are right but whose records break the rules, as a buggy or
    /// foreign writer could: the reader must still refuse it and point at the record.
    fn forge(p: &Path, bars: &[Bar]) {
        let data: &[u8] = bytemuck::cast_slice(bars);
        let h = Header {
            interval_s: 60,
            symbol: "AAPL".into(),
            count: bars.len() as u64,
            ts_first_ns: bars[0].ts_event_ns,
            ts_last_ns: bars[bars.len() - 1].ts_event_ns,
            data_xxh3: xxh3_64(data),
        };
        let mut out = h.encode().to_vec();
        out.extend_from_slice(data);
        std::fs::write(p, out).unwrap();
    }

    #[test]
    fn bad_records_are_rejected_at_their_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("AAPL.rtb");
        let base: Vec<Bar> = (0..5).map(|i| bar(i * 60, 1_000)).collect();
        let rec = |i: u64| HEADER_LEN as u64 + i * 48;

        let mut b = base.clone();
        b[3].ts_event_ns = b[2].ts_event_ns;
        forge(&p, &b);
        assert_eq!(fault(&p), (rec(3), FaultKind::Duplicate(120)));

        let mut b = base.clone();
        b[2].ts_event_ns = 10;
        forge(&p, &b);
        assert_eq!(fault(&p), (rec(2), FaultKind::Unsorted { prev_ns: 60, ts_ns: 10 }));

        let mut b = base.clone();
        b[4].low_px_e9 = b[4].high_px_e9 + 1;
        forge(&p, &b);
        assert_eq!(fault(&p), (rec(4) + 8, FaultKind::BadBar("high below low")));

        let mut b = base.clone();
        b[1].close_px_e9 = -5;
        forge(&p, &b);
        assert_eq!(fault(&p), (rec(1) + 8, FaultKind::BadBar("non-positive price")));

        // The writer refuses the same input.
        let e = write_bar_file(&p, "AAPL", 60, &b).unwrap_err();
        assert_eq!((e.offset, e.kind), (rec(1) + 8, FaultKind::BadBar("non-positive price")));
    }
}
