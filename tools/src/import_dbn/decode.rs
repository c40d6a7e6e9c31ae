//! One DBN file -> checked bars per (symbol, interval), with its [`DbnReport`].
//!
//! The `dbn` crate decodes; this module adds what it leaves to the caller: it detects plain or
//! zstd input by magic ([`dbn::decode::DynReader`]), refuses anything but OHLCV bars, resolves
//! instrument ids through the metadata's symbol mappings at each record's time, checks every
//! record and notices truncation. The decoder treats a short read as the end of the stream, so a
//! counting reader between the two counts the bytes handed over (a partial last record is
//! bytes read but never decoded) and turns zstd's "frame ends early" into an error.

use super::report::{DbnReport, Reject, SeriesSummary};
use crate::exit::bad_input;
use crate::progress::Progress;
use anyhow::Result;
use dbn::decode::{DbnMetadata, DecodeRecordRef, DynReader};
use dbn::{OhlcvMsg, RType, Record, Schema, UNDEF_PRICE, VersionUpgradePolicy, rtype};
use engine::records::{Bar, BarFault};
use engine::symbols::check_symbol;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The bar lengths of the OHLCV rtypes 0x20..=0x23, in seconds.
const INTERVALS: [u32; 4] = [1, 60, 3600, 86_400];

/// How often (in records) the Ctrl-C flag is polled.
const POLL_EVERY: u64 = 1 << 16;

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400_000_000_000;

/// A hasher for instrument ids (u32): one multiply (Fibonacci hashing). Ids come from the file and
/// are not attacker-chosen keys worth SipHash's cost on every record.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Per instrument id: the UTC day (ns / [`DAY_NS`]) and the series its records went to that day.
/// DBN symbol mappings change only at a date, so within one UTC day an id always names the same
/// symbol: the symbol map lookup and the symbol's hashing run once per id per day, not per record.
type IdCache = HashMap<u32, (u64, usize), std::hash::BuildHasherDefault<IdHasher>>;

/// The bars of one symbol at one interval from one file: valid, strictly increasing in time.
#[derive(Clone, Debug)]
pub struct Series {
    /// Symbol (the raw symbol from the file's mappings).
    pub symbol: String,
    /// Bar length in seconds.
    pub interval_s: u32,
    /// Bars, strictly increasing in `ts_event_ns`.
    pub bars: Vec<Bar>,
}

/// The result of decoding one DBN file.
#[derive(Debug)]
pub struct Decoded {
    /// One series per (symbol, interval), sorted by symbol then interval.
    pub series: Vec<Series>,
    /// Counts and rejected records.
    pub report: DbnReport,
}

/// A shared copy of [`Counted`]'s bytes read, prefix and cut flag.
type Seen = std::rc::Rc<std::cell::Cell<(u64, [u8; 8], bool)>>;

/// Counts the bytes the decoder reads and keeps the first 8 (the `DBN` prefix, version and
/// metadata length). A zstd stream that stops inside a frame is reported as `InvalidData`, since
/// the decoder would take `UnexpectedEof` for a clean end.
struct Counted<R> {
    inner: R,
    bytes: u64,
    prefix: [u8; 8],
    /// The zstd stream stopped inside a frame.
    cut: bool,
    /// Copies of the counts while the metadata is decoded (the decoder owns the reader and drops
    /// it on failure).
    seen: Option<Seen>,
}

impl<R> Counted<R> {
    /// The metadata length from the prefix, when the prefix is DBN's.
    fn metadata_end(&self) -> Option<u64> {
        let p = self.prefix;
        (self.bytes >= 8 && p[..3] == *b"DBN").then(|| 8 + u64::from(u32::from_le_bytes([p[4], p[5], p[6], p[7]])))
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.cut = true;
                if let Some(seen) = &self.seen {
                    seen.set((self.bytes, self.prefix, true));
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the zstd stream ends inside a frame ({e}): the file is truncated"),
                ));
            }
            Err(e) => return Err(e),
        };
        for (i, b) in buf[..n].iter().enumerate() {
            let at = self.bytes as usize + i;
            if at >= 8 {
                break;
            }
            self.prefix[at] = *b;
        }
        self.bytes += n as u64;
        if let Some(seen) = &self.seen {
            seen.set((self.bytes, self.prefix, self.cut));
        }
        Ok(n)
    }
}

/// Interval index (into [`INTERVALS`]) of a schema, for the deprecated rtype 0x11.
fn schema_interval(schema: Option<Schema>) -> Option<usize> {
    match schema? {
        Schema::Ohlcv1S => Some(0),
        Schema::Ohlcv1M => Some(1),
        Schema::Ohlcv1H => Some(2),
        Schema::Ohlcv1D => Some(3),
        _ => None,
    }
}

fn rtype_name(rt: u8) -> String {
    match RType::try_from(rt) {
        Ok(r) => format!("0x{rt:02x} ({r})"),
        Err(_) => format!("0x{rt:02x} (unknown)"),
    }
}

/// Decode and check the DBN file at `path`. `name` is used in messages.
///
/// Rejected records are counted in the report, not errors. Errors ([`crate::exit::BadInput`]):
/// the file cannot be opened, is not DBN (or its header is corrupt), is a version other than
/// 1-3, holds a schema or record type other than OHLCV 1s/1m/1h/1d, is corrupt or truncated
/// (with the record number and offset); [`crate::exit::Interrupted`] on Ctrl-C.
pub fn decode_file(path: &Path, name: &str) -> Result<Decoded> {
    decode_file_with_progress(path, name, &Progress::hidden())
}

/// [`decode_file`], advancing `pb` by the file's bytes as they are read.
pub fn decode_file_with_progress(path: &Path, name: &str, pb: &Progress) -> Result<Decoded> {
    let file = std::fs::File::open(path).map_err(|e| bad_input(format!("{name}: cannot open: {e}")))?;
    let len = file.metadata().map_or(0, |m| m.len());
    decode_reader(std::io::BufReader::with_capacity(1 << 20, Tracked { inner: file, pb }), name, len)
}

/// Advances a progress bar by the bytes read through it.
struct Tracked<'a, R> {
    inner: R,
    pb: &'a Progress,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pb.inc(n as u64);
        Ok(n)
    }
}

/// [`decode_file`] for a DBN stream already open (a file, or a response body held in memory:
/// `ringtape fetch --provider databento`). `len` is the stream's length in bytes when known (it
/// sizes the series up front for plain streams; 0 when unknown).
pub fn decode_reader<R: std::io::BufRead>(buffered: R, name: &str, len: u64) -> Result<Decoded> {
    let reader =
        DynReader::inferred_with_buffer(buffered).map_err(|e| bad_input(format!("{name}: cannot read: {e}")))?;
    let zstd = reader.is_compressed();
    let stream = if zstd { "decompressed stream" } else { "file" };
    // The decoder takes the reader and drops it on failure: a second handle on the counts
    // explains a failure to read the metadata.
    let counts: Seen = std::rc::Rc::new(std::cell::Cell::new((0, [0; 8], false)));
    let counted = Counted { inner: reader, bytes: 0, prefix: [0; 8], cut: false, seen: Some(counts.clone()) };
    let mut decoder = match dbn::decode::dbn::Decoder::with_upgrade_policy(counted, VersionUpgradePolicy::AsIs) {
        Ok(d) => d,
        Err(e) => {
            let (bytes, prefix, cut) = counts.get();
            let seen = Counted { inner: (), bytes, prefix, cut, seen: None };
            return Err(bad_input(match seen.metadata_end() {
                _ if cut => format!(
                    "{name}: truncated: the zstd stream ends inside a frame, in the DBN metadata; download the file \
                     again"
                ),
                _ if bytes == 0 => {
                    format!("{name}: the file is empty, not DBN; give a Databento .dbn or .dbn.zst file")
                }
                Some(_) if prefix[3] > 3 => format!(
                    "{name}: DBN version {} is not supported (versions 1, 2 and 3 are); convert it to version \
                     3 or earlier with Databento's dbn tools",
                    prefix[3]
                ),
                Some(end) if bytes < end => format!(
                    "{name}: truncated: the {stream} ends inside the DBN metadata ({bytes} of its {end} bytes \
                     present); download the file again"
                ),
                _ => format!(
                    "{name}: not a readable DBN file: corrupt header ({e}); give a Databento .dbn or .dbn.zst file \
                     (DBN versions 1-3)"
                ),
            }));
        }
    };
    let metadata = decoder.metadata().clone();
    if !(1..=3).contains(&metadata.version) {
        return Err(bad_input(format!(
            "{name}: DBN version {} is not supported (versions 1, 2 and 3 are); convert it to version 3 \
             or earlier with Databento's dbn tools",
            metadata.version
        )));
    }
    if let Some(schema) = metadata.schema
        && schema_interval(Some(schema)).is_none()
    {
        return Err(bad_input(format!(
            "{name}: schema {schema} is not OHLCV bars; import dbn reads ohlcv-1s, ohlcv-1m, ohlcv-1h and ohlcv-1d \
             files only (request one of those schemas from Databento)"
        )));
    }
    let symbol_map = metadata.symbol_map().map_err(|e| {
        bad_input(format!(
            "{name}: the metadata's symbol mappings cannot be read ({e}); instrument ids cannot be named, nothing \
             imported"
        ))
    })?;
    let mut report = DbnReport {
        name: name.to_string(),
        version: metadata.version,
        zstd,
        dataset: metadata.dataset.clone(),
        schema: metadata.schema.map_or_else(|| "mixed".to_string(), |s| s.to_string()),
        ..DbnReport::default()
    };
    let mut series: Vec<Series> = Vec::new();
    // Room for each new series up front (a plain file's size tells the record count; records are
    // assumed spread evenly over the mapped symbols): no regrowth copies on the common file.
    // Capacity not used is address space never touched.
    let per_series = if zstd {
        0
    } else {
        let records = len / std::mem::size_of::<OhlcvMsg>() as u64;
        usize::try_from(records / metadata.mappings.len().max(1) as u64 + 1024).unwrap_or(0)
    };
    // Per interval: symbol -> index into `series`.
    let mut index: [HashMap<String, usize>; 4] = Default::default();
    let mut cache: [IdCache; 4] = Default::default();
    // Byte offset of the next record: known once the 8-byte prefix has been seen.
    decoder.get_mut().seen = None;
    let mut offset = decoder.get_ref().metadata_end().unwrap_or(0);
    let mut n: u64 = 0;
    loop {
        if n.is_multiple_of(POLL_EVERY) && crate::interrupt::requested() {
            return Err(crate::exit::interrupted(format!("interrupted while reading {name}")));
        }
        let rec = match decoder.decode_record_ref() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => {
                return Err(bad_input(if decoder.get_ref().cut {
                    format!(
                        "{name}: truncated: the zstd stream ends inside a frame after record {n} (byte {} of the \
                         decompressed stream); download the file again",
                        decoder.get_ref().bytes
                    )
                } else {
                    format!(
                        "{name}: corrupt DBN data at record {} (byte {offset} of the {stream}): {e}; the file is \
                         damaged, download it again",
                        n + 1
                    )
                }));
            }
        };
        n += 1;
        let rec_offset = offset;
        offset += rec.record_size() as u64;
        let rt = rec.header().rtype;
        let iv = match rt {
            rtype::OHLCV_1S => 0,
            rtype::OHLCV_1M => 1,
            rtype::OHLCV_1H => 2,
            rtype::OHLCV_1D => 3,
            #[allow(deprecated, reason = "old files still carry the deprecated OHLCV rtype")]
            rtype::OHLCV_DEPRECATED if schema_interval(metadata.schema).is_some() => {
                schema_interval(metadata.schema).unwrap_or(0)
            }
            _ => {
                return Err(bad_input(format!(
                    "{name}: record {n} (byte {rec_offset} of the {stream}) has rtype {}, not an OHLCV bar \
                     (0x20-0x23); import dbn reads ohlcv-1s/1m/1h/1d files only, nothing imported",
                    rtype_name(rt)
                )));
            }
        };
        let Some(msg) = rec.get::<OhlcvMsg>() else {
            return Err(bad_input(format!(
                "{name}: record {n} (byte {rec_offset} of the {stream}) is too short for an OHLCV bar ({} bytes); \
                 the file is damaged",
                rec.record_size()
            )));
        };
        report.records_read += 1;
        let id = msg.hd.instrument_id;
        let ts = msg.hd.ts_event;
        let day = ts / DAY_NS;
        // Ok(series) from the cache, Err(symbol) from the map.
        let target = match cache[iv].get(&id) {
            Some(&(d, si)) if d == day => Ok(si),
            _ => match symbol_map.get_for_ts(ts, id) {
                Some(symbol) => Err(symbol),
                None => {
                    *report.unmapped_ids.entry(id).or_insert(0) += 1;
                    report.reject(n, Reject::UnmappedInstrument, || {
                        format!("instrument {id} at {}", crate::export::fmt_ts(ts as i64))
                    });
                    continue;
                }
            },
        };
        let bar = Bar {
            ts_event_ns: ts as i64,
            open_px_e9: msg.open,
            high_px_e9: msg.high,
            low_px_e9: msg.low,
            close_px_e9: msg.close,
            volume: msg.volume,
        };
        let px = || format!("open {} high {} low {} close {}", msg.open, msg.high, msg.low, msg.close);
        if [msg.open, msg.high, msg.low, msg.close].contains(&UNDEF_PRICE) {
            report.reject(n, Reject::UndefPrice, px);
            continue;
        }
        if ts > i64::MAX as u64 {
            report.reject(n, Reject::OutOfOrder, || format!("ts_event {ts} is past 2262"));
            continue;
        }
        if let Err(fault) = bar.validate() {
            let reason = match fault {
                BarFault::NonPositivePrice => Reject::NonPositivePrice,
                BarFault::HighBelowLow => Reject::HighBelowLow,
                BarFault::OutsideRange => Reject::OutsideRange,
            };
            report.reject(n, reason, px);
            continue;
        }
        let si = match target {
            Ok(si) => si,
            Err(symbol) => {
                let si = match index[iv].get(symbol.as_str()) {
                    Some(&si) => si,
                    None => {
                        if let Err(e) = check_symbol(symbol) {
                            report.reject(n, Reject::BadSymbol, || format!("instrument {id}: {e}"));
                            continue;
                        }
                        let bars = Vec::with_capacity(per_series);
                        series.push(Series { symbol: symbol.clone(), interval_s: INTERVALS[iv], bars });
                        index[iv].insert(symbol.clone(), series.len() - 1);
                        series.len() - 1
                    }
                };
                cache[iv].insert(id, (day, si));
                si
            }
        };
        let s = &mut series[si];
        if let Some(last) = s.bars.last() {
            if bar.ts_event_ns == last.ts_event_ns {
                report.reject(n, Reject::DuplicateWindow, || {
                    format!("{} {} again", s.symbol, crate::export::fmt_ts(bar.ts_event_ns))
                });
                continue;
            }
            if bar.ts_event_ns < last.ts_event_ns {
                report.reject(n, Reject::OutOfOrder, || {
                    format!(
                        "{} {} after {}",
                        s.symbol,
                        crate::export::fmt_ts(bar.ts_event_ns),
                        crate::export::fmt_ts(last.ts_event_ns)
                    )
                });
                continue;
            }
        }
        s.bars.push(bar);
        report.imported += 1;
    }
    let read = decoder.get_ref().bytes;
    if !metadata.ts_out && read > offset {
        return Err(bad_input(format!(
            "{name}: truncated: record {} at byte {offset} of the {stream} is cut short ({} of its bytes present); \
             download the file again",
            n + 1,
            read - offset
        )));
    }
    series.sort_by(|a, b| (a.symbol.as_str(), a.interval_s).cmp(&(b.symbol.as_str(), b.interval_s)));
    report.series = series
        .iter()
        .map(|s| SeriesSummary {
            symbol: s.symbol.clone(),
            interval_s: s.interval_s,
            bars: s.bars.len() as u64,
            first_ns: s.bars.first().map_or(0, |b| b.ts_event_ns),
            last_ns: s.bars.last().map_or(0, |b| b.ts_event_ns),
        })
        .collect();
    Ok(Decoded { series, report })
}
