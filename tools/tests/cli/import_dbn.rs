//! `ringtape import dbn` on DBN fixtures written in the test with the `dbn` crate's encoder, in
//! every DBN version (1, 2, 3), plain and zstd, with symbol mappings. Each test runs the real
//! binary. Prices are 1e-9 fixed point in DBN and in bar files, so they compare exactly.

use super::{Out, assert_one_line_error, files_in, ringtape, s, utc_ns};
use dbn::encode::{DbnEncodable, EncodeRecord};
use dbn::{MappingInterval, Metadata, OhlcvMsg, RecordHeader, SType, Schema, SymbolMapping, TradeMsg, rtype};
use engine::barfile::BarFile;
use engine::records::Bar;
use std::path::{Path, PathBuf};
use time::{Date, Month};

/// 1e9: one dollar in 1e-9 units.
const D: i64 = 1_000_000_000;

fn day(d: u8) -> Date {
    Date::from_calendar_date(2024, Month::January, d).unwrap()
}

/// `raw_symbol` is instrument `id` from 2024-01-`d0` (inclusive) to 2024-01-`d1` (exclusive).
fn mapping(raw_symbol: &str, id: u32, d0: u8, d1: u8) -> SymbolMapping {
    SymbolMapping {
        raw_symbol: raw_symbol.into(),
        intervals: vec![MappingInterval { start_date: day(d0), end_date: day(d1), symbol: id.to_string() }],
    }
}

/// An OHLCV record with prices in whole cents (`o`, `h`, `l`, `c` x 0.01).
fn bar_rec(rt: u8, id: u32, ts: i64, [o, h, l, c]: [i64; 4], volume: u64) -> OhlcvMsg {
    let px = |cents: i64| if cents == i64::MAX { cents } else { cents * D / 100 };
    OhlcvMsg {
        hd: RecordHeader::new::<OhlcvMsg>(rt, 1, id, ts as u64),
        open: px(o),
        high: px(h),
        low: px(l),
        close: px(c),
        volume,
    }
}

/// The bar a valid record becomes.
fn as_bar(r: &OhlcvMsg) -> Bar {
    Bar {
        ts_event_ns: r.hd.ts_event as i64,
        open_px_e9: r.open,
        high_px_e9: r.high,
        low_px_e9: r.low,
        close_px_e9: r.close,
        volume: r.volume,
    }
}

fn metadata(version: u8, schema: Option<Schema>, mappings: Vec<SymbolMapping>) -> Metadata {
    let symbols = mappings.iter().map(|m| m.raw_symbol.clone()).collect();
    Metadata::builder()
        .version(version)
        .dataset("XNAS.ITCH")
        .schema(schema)
        .start(utc_ns("2024-01-02T00:00:00Z") as u64)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .symbols(symbols)
        .mappings(mappings)
        .build()
}

/// Write `records` as a DBN file of `version` (zstd-compressed when `zstd`) and return its path.
fn write_dbn<R: DbnEncodable>(path: &Path, meta: &Metadata, zstd: bool, records: &[R]) -> PathBuf {
    let file = std::fs::File::create(path).unwrap();
    if zstd {
        let mut enc = dbn::encode::dbn::Encoder::with_zstd(file, meta).unwrap();
        for r in records {
            enc.encode_record(r).unwrap();
        }
        enc.flush().unwrap();
        drop(enc); // finishes the zstd frame
    } else {
        let mut enc = dbn::encode::dbn::Encoder::new(file, meta).unwrap();
        for r in records {
            enc.encode_record(r).unwrap();
        }
        enc.flush().unwrap();
    }
    path.to_path_buf()
}

/// Import `files` into `out` with `extra` arguments.
fn import(files: &[&Path], out: &Path, extra: &[&str]) -> Out {
    let mut args: Vec<String> = vec!["import".into(), "dbn".into()];
    args.extend(files.iter().map(|p| s(p)));
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(["--out".into(), s(out)]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ringtape(&refs)
}

fn bars(path: &Path) -> Vec<Bar> {
    BarFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).bars().to_vec()
}

/// Two symbols (AAPL = 11, MSFT = 12), three one-minute bars each, interleaved in time order as
/// Databento writes them.
fn two_symbols_1m() -> (Vec<SymbolMapping>, Vec<OhlcvMsg>) {
    let t0 = utc_ns("2024-01-02T14:30:00Z");
    let mut recs = Vec::new();
    for i in 0..3i64 {
        let t = t0 + i * 60 * D;
        recs.push(bar_rec(rtype::OHLCV_1M, 11, t, [18_500 + i, 18_550 + i, 18_490, 18_520 + i], 1000 + i as u64));
        recs.push(bar_rec(rtype::OHLCV_1M, 12, t, [37_000, 37_100, 36_950 - i, 37_050], 500 + i as u64));
    }
    (vec![mapping("AAPL", 11, 2, 3), mapping("MSFT", 12, 2, 3)], recs)
}

/// A directory that already holds a bar file, to show that a failed import leaves it untouched.
fn out_with_a_file(dir: &Path) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let b = Bar {
        ts_event_ns: utc_ns("2024-01-02T00:00:00Z"),
        open_px_e9: D,
        high_px_e9: D,
        low_px_e9: D,
        close_px_e9: D,
        volume: 1,
    };
    engine::barfile::write_bar_file(&out.join("OLD.1d.rtb"), "OLD", 86_400, &[b]).unwrap();
    let before = snapshot(&out);
    (out, before)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap())).collect()
}

#[test]
fn every_dbn_version_plain_and_zstd_round_trips_exactly() {
    let d = tempfile::tempdir().unwrap();
    let (maps, recs) = two_symbols_1m();
    for version in [1u8, 2, 3] {
        for zstd in [false, true] {
            let name = format!("v{version}{}.dbn{}", if zstd { "z" } else { "" }, if zstd { ".zst" } else { "" });
            let meta = metadata(version, Some(Schema::Ohlcv1M), maps.clone());
            let file = write_dbn(&d.path().join(&name), &meta, zstd, &recs);
            // The fixture really is what it claims: DBN magic + version, or a zstd frame.
            let head = std::fs::read(&file).unwrap();
            if zstd {
                assert_eq!(head[..4], [0x28, 0xB5, 0x2F, 0xFD], "{name}");
            } else {
                assert_eq!(head[..4], [b'D', b'B', b'N', version], "{name}");
            }
            let out = d.path().join(format!("out-{name}"));
            let o = import(&[&file], &out, &[]);
            assert_eq!(o.code, 0, "{name}: {}", o.stderr);
            let e = &o.stderr;
            assert!(e.contains(&format!("DBN v{version}{}", if zstd { " zstd" } else { "" })), "{e}");
            assert!(e.contains("XNAS.ITCH ohlcv-1m: 6 records read, 6 imported, 0 rejected"), "{e}");
            assert!(e.contains("AAPL 1m: 3 bars, 2024-01-02T14:30:00Z .. 2024-01-02T14:32:00Z"), "{e}");
            assert_eq!(files_in(&out), ["AAPL.1m.rtb", "MSFT.1m.rtb"]);
            for (sym, id) in [("AAPL", 11), ("MSFT", 12)] {
                let f = BarFile::open(&out.join(format!("{sym}.1m.rtb"))).unwrap();
                assert_eq!((f.header().symbol.as_str(), f.header().interval_s), (sym, 60));
                let want: Vec<Bar> = recs.iter().filter(|r| r.hd.instrument_id == id).map(as_bar).collect();
                assert_eq!(f.bars(), &want[..], "{name} {sym}");
            }
            // 185.00 exactly, as 1e-9 fixed point: no float on the way.
            assert_eq!(bars(&out.join("AAPL.1m.rtb"))[0].open_px_e9, 185_000_000_000);
        }
    }
}

#[test]
fn each_ohlcv_rtype_gives_its_interval() {
    let d = tempfile::tempdir().unwrap();
    let t = utc_ns("2024-01-02T00:00:00Z");
    let cases = [
        (Schema::Ohlcv1S, rtype::OHLCV_1S, 1, "1s"),
        (Schema::Ohlcv1M, rtype::OHLCV_1M, 60, "1m"),
        (Schema::Ohlcv1H, rtype::OHLCV_1H, 3600, "1h"),
        (Schema::Ohlcv1D, rtype::OHLCV_1D, 86_400, "1d"),
    ];
    let mut files = Vec::new();
    for (k, (schema, rt, secs, _)) in cases.iter().enumerate() {
        let recs: Vec<OhlcvMsg> = (0..2).map(|i| bar_rec(*rt, 7, t + i * secs * D, [100, 110, 90, 105], 9)).collect();
        let version = [1u8, 2, 3, 3][k];
        files.push(write_dbn(
            &d.path().join(format!("{schema}.dbn")),
            &metadata(version, Some(*schema), vec![mapping("ES.FUT", 7, 1, 9)]),
            k % 2 == 1,
            &recs,
        ));
    }
    // Old (DBN v1) files may carry the deprecated OHLCV rtype 0x11: the schema gives the interval.
    #[allow(deprecated, reason = "the deprecated rtype is what such files hold")]
    let old_rt = rtype::OHLCV_DEPRECATED;
    let old =
        vec![bar_rec(old_rt, 8, t, [100, 110, 90, 105], 9), bar_rec(old_rt, 8, t + 3600 * D, [100, 110, 90, 105], 9)];
    files.push(write_dbn(
        &d.path().join("old.dbn"),
        &metadata(1, Some(Schema::Ohlcv1H), vec![mapping("NQ.FUT", 8, 1, 9)]),
        false,
        &old,
    ));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = d.path().join("out");
    let o = import(&refs, &out, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(files_in(&out), ["ES.FUT.1d.rtb", "ES.FUT.1h.rtb", "ES.FUT.1m.rtb", "ES.FUT.1s.rtb", "NQ.FUT.1h.rtb"]);
    assert_eq!(bars(&out.join("NQ.FUT.1h.rtb")), [as_bar(&old[0]), as_bar(&old[1])]);
    for (_, _, secs, iv) in cases {
        let f = BarFile::open(&out.join(format!("ES.FUT.{iv}.rtb"))).unwrap();
        assert_eq!((f.header().interval_s, f.header().count), (secs as u32, 2), "{iv}");
        assert_eq!(f.bars()[1].ts_event_ns, t + secs * D, "{iv}");
    }
}

#[test]
fn unmapped_instrument_ids_are_counted_and_never_named() {
    let d = tempfile::tempdir().unwrap();
    let t2 = utc_ns("2024-01-02T14:30:00Z");
    let t3 = utc_ns("2024-01-03T14:30:00Z");
    // Instrument 11 is AAPL on Jan 2 only; on Jan 3 AAPL is instrument 21 (ids change between
    // days). Instrument 99 has no mapping at all.
    let maps = vec![SymbolMapping {
        raw_symbol: "AAPL".into(),
        intervals: vec![
            MappingInterval { start_date: day(2), end_date: day(3), symbol: "11".into() },
            MappingInterval { start_date: day(3), end_date: day(4), symbol: "21".into() },
        ],
    }];
    let recs = vec![
        bar_rec(rtype::OHLCV_1M, 11, t2, [100, 110, 90, 105], 1),
        bar_rec(rtype::OHLCV_1M, 99, t2, [100, 110, 90, 105], 1),
        bar_rec(rtype::OHLCV_1M, 11, t3, [100, 110, 90, 105], 1), // 11 is unmapped on Jan 3
        bar_rec(rtype::OHLCV_1M, 21, t3, [200, 210, 190, 205], 2),
        bar_rec(rtype::OHLCV_1M, 99, t3 + 60 * D, [100, 110, 90, 105], 1),
    ];
    for version in [1u8, 2, 3] {
        let file = write_dbn(
            &d.path().join(format!("map{version}.dbn")),
            &metadata(version, Some(Schema::Ohlcv1M), maps.clone()),
            version == 2,
            &recs,
        );
        let out = d.path().join(format!("out{version}"));
        let o = import(&[&file], &out, &[]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let e = &o.stderr;
        assert!(e.contains("5 records read, 2 imported, 3 rejected"), "{e}");
        assert!(e.contains("3 unmapped instrument id (records 2, 3, 5)"), "{e}");
        assert!(e.contains("record 2: unmapped instrument id: instrument 99 at 2024-01-02T14:30:00Z"), "{e}");
        assert!(e.contains("record 3: unmapped instrument id: instrument 11 at 2024-01-03T14:30:00Z"), "{e}");
        assert!(e.contains("no symbol mapping in the file's metadata: 11 (1 records), 99 (2 records)"), "{e}");
        // Only AAPL is written (no file named after an id), with the bars of 11 on Jan 2 and 21 on Jan 3.
        assert_eq!(files_in(&out), ["AAPL.1m.rtb"]);
        assert_eq!(bars(&out.join("AAPL.1m.rtb")), [as_bar(&recs[0]), as_bar(&recs[3])]);
    }
}

#[test]
fn invalid_records_are_counted_by_reason_and_the_rest_import() {
    let d = tempfile::tempdir().unwrap();
    let t0 = utc_ns("2024-01-02T14:30:00Z");
    let m = |i: i64| t0 + i * 60 * D;
    let u = i64::MAX; // UNDEF_PRICE
    let recs = vec![
        bar_rec(rtype::OHLCV_1M, 11, m(0), [100, 110, 90, 105], 1), // 1 ok
        bar_rec(rtype::OHLCV_1M, 11, m(1), [100, u, 90, 105], 1),   // 2 UNDEF_PRICE
        bar_rec(rtype::OHLCV_1M, 11, m(2), [0, 110, 90, 105], 1),   // 3 non-positive
        bar_rec(rtype::OHLCV_1M, 11, m(3), [-5, 110, 90, 105], 1),  // 4 non-positive
        bar_rec(rtype::OHLCV_1M, 11, m(4), [100, 90, 110, 100], 1), // 5 high < low
        bar_rec(rtype::OHLCV_1M, 11, m(5), [120, 110, 90, 105], 1), // 6 open above high
        bar_rec(rtype::OHLCV_1M, 11, m(6), [100, 110, 90, 85], 1),  // 7 close below low
        bar_rec(rtype::OHLCV_1M, 11, m(7), [100, 110, 90, 105], 7), // 8 ok
        bar_rec(rtype::OHLCV_1M, 11, m(7), [100, 110, 90, 106], 8), // 9 duplicate window
        bar_rec(rtype::OHLCV_1M, 11, m(3), [100, 110, 90, 105], 1), // 10 out of order
        bar_rec(rtype::OHLCV_1M, 11, m(8), [100, 110, 90, 105], 9), // 11 ok
    ];
    let file = write_dbn(
        &d.path().join("bad.dbn.zst"),
        &metadata(3, Some(Schema::Ohlcv1M), vec![mapping("AAPL", 11, 2, 3)]),
        true,
        &recs,
    );
    let out = d.path().join("out");
    let o = import(&[&file], &out, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let e = &o.stderr;
    assert!(e.contains("11 records read, 3 imported, 8 rejected"), "{e}");
    for reason in [
        "1 undefined price (UNDEF_PRICE) (record 2)",
        "2 non-positive price (records 3, 4)",
        "1 high < low (record 5)",
        "2 open/close outside [low, high] (records 6, 7)",
        "1 duplicate window (record 9)",
        "1 out of order (record 10)",
    ] {
        assert!(e.contains(reason), "{reason:?} missing in {e}");
    }
    assert!(
        e.contains("bad.dbn.zst: record 2: undefined price (UNDEF_PRICE): open 1000000000 high 9223372036854775807"),
        "{e}"
    );
    assert!(e.contains("... and 3 more rejected records"), "{e}");
    // The first of the duplicate window is kept (volume 7, not 8).
    assert_eq!(bars(&out.join("AAPL.1m.rtb")), [as_bar(&recs[0]), as_bar(&recs[7]), as_bar(&recs[10])]);

    // --strict: exit 2 and nothing written.
    let strict = d.path().join("strict");
    let o = import(&[&file], &strict, &["--strict"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .lines()
            .last()
            .unwrap()
            .contains("bad.dbn.zst: 8 records rejected and --strict is set; nothing written"),
        "{}",
        o.stderr
    );
    assert!(!strict.exists());

    // A file whose every record is rejected imports nothing: exit 2.
    let all_bad =
        write_dbn(&d.path().join("allbad.dbn"), &metadata(2, Some(Schema::Ohlcv1M), vec![]), false, &recs[..2]);
    let o = import(&[&all_bad], &d.path().join("none"), &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("allbad.dbn: no bars imported (2 records read, all rejected"), "{}", o.stderr);
}

#[test]
fn truncated_files_are_one_line_errors_and_leave_out_untouched() {
    let d = tempfile::tempdir().unwrap();
    let (maps, recs) = two_symbols_1m();
    for version in [1u8, 2, 3] {
        for zstd in [false, true] {
            let name = format!("t{version}.dbn{}", if zstd { ".zst" } else { "" });
            let path = d.path().join(&name);
            write_dbn(&path, &metadata(version, Some(Schema::Ohlcv1M), maps.clone()), zstd, &recs);
            let full = std::fs::read(&path).unwrap();
            // Cut inside the last record (plain: 20 of its 56 bytes gone) or the zstd frame.
            let cut = if zstd { full.len() - 7 } else { full.len() - 20 };
            std::fs::write(&path, &full[..cut]).unwrap();
            let (out, before) = out_with_a_file(&d.path().join(format!("o-{name}")));
            let o = import(&[&path], &out, &[]);
            if zstd {
                assert_one_line_error(&o, &[&name, "truncated: the zstd stream ends inside a frame after record 6"]);
            } else {
                // Record 6 starts 56 bytes before the end of the full file.
                let at = format!("record 6 at byte {}", full.len() - 56);
                assert_one_line_error(&o, &[&name, "truncated", &at, "36 of its bytes present"]);
            }
            assert_eq!(snapshot(&out), before, "{name}: --out must be untouched");
            // Cut inside the metadata.
            std::fs::write(&path, &full[..30]).unwrap();
            let o = import(&[&path], &out, &[]);
            if zstd {
                assert_one_line_error(
                    &o,
                    &[&name, "truncated: the zstd stream ends inside a frame, in the DBN metadata"],
                );
            } else {
                let end = 8 + u32::from_le_bytes(full[4..8].try_into().unwrap());
                let msg = format!("truncated: the file ends inside the DBN metadata (30 of its {end} bytes present)");
                assert_one_line_error(&o, &[&name, &msg]);
            }
            assert_eq!(snapshot(&out), before);
        }
    }
}

#[test]
fn corrupt_files_are_one_line_errors_and_leave_out_untouched() {
    let d = tempfile::tempdir().unwrap();
    let (maps, recs) = two_symbols_1m();
    let good = write_dbn(&d.path().join("good.dbn"), &metadata(2, Some(Schema::Ohlcv1M), maps), false, &recs);
    let full = std::fs::read(&good).unwrap();
    let (out, before) = out_with_a_file(d.path());

    // A broken magic: not DBN.
    let mut bytes = full.clone();
    bytes[0..3].copy_from_slice(b"XYZ");
    let bad_magic = d.path().join("magic.dbn");
    std::fs::write(&bad_magic, &bytes).unwrap();
    assert_one_line_error(&import(&[&bad_magic], &out, &[]), &["magic.dbn", "not a readable DBN file"]);

    // A version this reader does not know.
    let mut bytes = full.clone();
    bytes[3] = 9;
    let bad_version = d.path().join("version.dbn");
    std::fs::write(&bad_version, &bytes).unwrap();
    assert_one_line_error(
        &import(&[&bad_version], &out, &[]),
        &["version.dbn", "DBN version 9 is not supported (versions 1, 2 and 3 are)"],
    );

    // A metadata length pointing past the end of the file.
    let mut bytes = full.clone();
    bytes[4..8].copy_from_slice(&1_000_000u32.to_le_bytes());
    let bad_len = d.path().join("metalen.dbn");
    std::fs::write(&bad_len, &bytes).unwrap();
    assert_one_line_error(
        &import(&[&bad_len], &out, &[]),
        &["metalen.dbn", "truncated: the file ends inside the DBN metadata", "of its 1000008 bytes present"],
    );

    // An empty file and text.
    let empty = d.path().join("empty.dbn");
    std::fs::write(&empty, b"").unwrap();
    assert_one_line_error(&import(&[&empty], &out, &[]), &["empty.dbn", "the file is empty, not DBN"]);
    let text = d.path().join("text.dbn");
    std::fs::write(&text, "timestamp,open,high,low,close\n").unwrap();
    assert_one_line_error(&import(&[&text], &out, &[]), &["text.dbn", "not a readable DBN file"]);

    // A record header whose length byte is 0: the data is corrupt at record 3.
    let first = 8 + u32::from_le_bytes(full[4..8].try_into().unwrap()) as usize;
    let mut bytes = full.clone();
    bytes[first + 2 * 56] = 0;
    let bad_rec = d.path().join("record.dbn");
    std::fs::write(&bad_rec, &bytes).unwrap();
    let o = import(&[&bad_rec], &out, &[]);
    let at = format!("corrupt DBN data at record 3 (byte {} of the file)", first + 2 * 56);
    assert_one_line_error(&o, &["record.dbn", &at, "impossible length 0"]);

    // A good file given with a bad one writes nothing either.
    let o = import(&[&good, &bad_magic], &out, &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.lines().last().unwrap().contains("magic.dbn"), "{}", o.stderr);
    assert_eq!(snapshot(&out), before, "--out must be untouched");
    // A missing file.
    assert_one_line_error(&import(&[Path::new("/nonexistent/x.dbn")], &out, &[]), &["/nonexistent/x.dbn"]);
}

#[test]
fn schemas_and_records_other_than_ohlcv_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let t = utc_ns("2024-01-02T14:30:00Z") as u64;
    let trade = TradeMsg {
        hd: RecordHeader::new::<TradeMsg>(rtype::MBP_0, 1, 11, t),
        price: 185 * D,
        size: 100,
        ..Default::default()
    };
    let maps = vec![mapping("AAPL", 11, 2, 3)];
    let (out, before) = out_with_a_file(d.path());
    for version in [1u8, 2, 3] {
        let name = format!("trades{version}.dbn");
        let file = write_dbn(
            &d.path().join(&name),
            &metadata(version, Some(Schema::Trades), maps.clone()),
            false,
            std::slice::from_ref(&trade),
        );
        assert_one_line_error(&import(&[&file], &out, &[]), &[&name, "schema trades is not OHLCV bars", "ohlcv-1m"]);
    }
    // A file without a schema (mixed) that holds a trade after a bar: refused at that record.
    let path = d.path().join("mixed.dbn.zst");
    let file = std::fs::File::create(&path).unwrap();
    let mut enc = dbn::encode::dbn::Encoder::with_zstd(file, &metadata(3, None, maps)).unwrap();
    enc.encode_record(&bar_rec(rtype::OHLCV_1M, 11, t as i64, [100, 110, 90, 105], 1)).unwrap();
    enc.encode_record(&trade).unwrap();
    drop(enc);
    assert_one_line_error(
        &import(&[&path], &out, &[]),
        &["mixed.dbn.zst", "record 2", "rtype 0x00", "not an OHLCV bar"],
    );
    // OHLCV end-of-day bars (rtype 0x24) are not one of the four intervals: refused too.
    let eod = write_dbn(
        &d.path().join("eod.dbn"),
        &metadata(3, Some(Schema::Ohlcv1D), vec![mapping("AAPL", 11, 2, 3)]),
        false,
        &[bar_rec(rtype::OHLCV_EOD, 11, t as i64, [100, 110, 90, 105], 1)],
    );
    assert_one_line_error(&import(&[&eod], &out, &[]), &["eod.dbn", "record 1", "rtype 0x24", "not an OHLCV bar"]);
    assert_eq!(snapshot(&out), before);
}

#[test]
fn several_files_merge_sorted_with_duplicates_resolved() {
    let d = tempfile::tempdir().unwrap();
    let t0 = utc_ns("2024-01-02T14:30:00Z");
    let m = |i: i64| t0 + i * 60 * D;
    let maps = vec![mapping("AAPL", 11, 2, 3), mapping("MSFT", 12, 2, 3)];
    // File A (DBN v1, plain): AAPL at minutes 0, 2, 4; MSFT at minute 0.
    let a_recs = vec![
        bar_rec(rtype::OHLCV_1M, 11, m(0), [100, 110, 90, 105], 1),
        bar_rec(rtype::OHLCV_1M, 12, m(0), [300, 310, 290, 305], 1),
        bar_rec(rtype::OHLCV_1M, 11, m(2), [100, 110, 90, 102], 2),
        bar_rec(rtype::OHLCV_1M, 11, m(4), [100, 110, 90, 104], 4),
    ];
    // File B (DBN v3, zstd; another request with other instrument ids): AAPL at minutes 1, 2
    // (identical to A's), 4 (different from A's) and 5.
    let b_maps = vec![mapping("AAPL", 51, 2, 3)];
    let b_recs = vec![
        bar_rec(rtype::OHLCV_1M, 51, m(1), [100, 110, 90, 101], 1),
        bar_rec(rtype::OHLCV_1M, 51, m(2), [100, 110, 90, 102], 2),
        bar_rec(rtype::OHLCV_1M, 51, m(4), [100, 110, 90, 99], 4),
        bar_rec(rtype::OHLCV_1M, 51, m(5), [100, 110, 90, 105], 5),
    ];
    let a = write_dbn(&d.path().join("a.dbn"), &metadata(1, Some(Schema::Ohlcv1M), maps), false, &a_recs);
    let b = write_dbn(&d.path().join("b.dbn.zst"), &metadata(3, Some(Schema::Ohlcv1M), b_maps), true, &b_recs);
    let out = d.path().join("out");
    let o = import(&[&a, &b], &out, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let e = &o.stderr;
    assert!(e.contains("a.dbn: DBN v1, XNAS.ITCH ohlcv-1m: 4 records read, 4 imported, 0 rejected"), "{e}");
    assert!(e.contains("b.dbn.zst: DBN v3 zstd, XNAS.ITCH ohlcv-1m: 4 records read, 3 imported, 1 rejected"), "{e}");
    assert!(e.contains("rejected: 1 conflicting duplicate of an earlier file"), "{e}");
    assert!(e.contains("AAPL 1m 2024-01-02T14:34:00Z differs from the bar in an earlier file (kept)"), "{e}");
    assert!(e.contains("note: 1 bars identical to bars of an earlier file merged as one"), "{e}");
    assert!(e.contains("wrote 2 bar files"), "{e}");
    assert!(e.contains("AAPL 1m: 5 bars"), "{e}");
    assert_eq!(
        bars(&out.join("AAPL.1m.rtb")),
        [as_bar(&a_recs[0]), as_bar(&b_recs[0]), as_bar(&a_recs[2]), as_bar(&a_recs[3]), as_bar(&b_recs[3])]
    );
    assert_eq!(bars(&out.join("MSFT.1m.rtb")), [as_bar(&a_recs[1])]);
    // The same files in the other order: the same windows; the conflict keeps B's bar this time.
    let out2 = d.path().join("out2");
    let o = import(&[&b, &a], &out2, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let got: Vec<i64> = bars(&out2.join("AAPL.1m.rtb")).iter().map(|b| b.ts_event_ns).collect();
    assert_eq!(got, [m(0), m(1), m(2), m(4), m(5)]);
    assert_eq!(bars(&out2.join("AAPL.1m.rtb"))[3], as_bar(&b_recs[2]));
}

#[test]
fn import_dbn_help_says_what_is_accepted() {
    let o = ringtape(&["import", "dbn", "--help"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for needle in ["--out", "--strict", "ohlcv-1s", "versions 1, 2 and 3", "symbol mappings", "zstd"] {
        assert!(o.stdout.contains(needle), "{needle:?} not in {}", o.stdout);
    }
    assert!(ringtape(&["import", "--help"]).stdout.contains("dbn"));
    assert_one_line_error(&ringtape(&["import", "dbn", "x.dbn"]), &["--out"]);
}

#[test]
fn ctrl_c_during_import_exits_130_and_leaves_out_untouched() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let d = tempfile::tempdir().unwrap();
    let (out, before) = out_with_a_file(d.path());
    // A FIFO stands in for a large file: the importer reads what the test writes, when it writes it.
    let fifo = d.path().join("live.dbn");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtape"))
        .args(["import", "dbn", &s(&fifo), "--out", &s(&out)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let meta = metadata(3, Some(Schema::Ohlcv1M), vec![mapping("AAPL", 11, 1, 31)]);
    let t0 = utc_ns("2024-01-02T00:00:00Z");
    let rec = |i: i64| bar_rec(rtype::OHLCV_1M, 11, t0 + i * 60 * D, [100, 110, 90, 105], 1);
    let mut enc =
        dbn::encode::dbn::Encoder::new(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap(), &meta).unwrap();
    for i in 0..10 {
        enc.encode_record(&rec(i)).unwrap();
    }
    enc.flush().unwrap();
    // Our open returned, so the importer has opened the FIFO, after installing its Ctrl-C handler.
    // Ctrl-C, then more records: it stops at its next check (every 65,536 records).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    for i in 10..100_000 {
        // The importer may stop reading (and close the FIFO) before all of these are written.
        if enc.encode_record(&rec(i)).is_err() {
            break;
        }
    }
    let _ = enc.get_mut().flush();
    drop(enc);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted while reading") && stderr.contains("nothing written"), "{stderr}");
    assert_eq!(snapshot(&out), before, "--out must be untouched");
}

#[test]
fn symbols_that_would_share_a_file_name_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let t = utc_ns("2024-01-02T14:30:00Z");
    // BRK/B is written as BRK_B.1m.rtb, the name BRK_B itself would have.
    let file = write_dbn(
        &d.path().join("brk.dbn"),
        &metadata(2, Some(Schema::Ohlcv1M), vec![mapping("BRK/B", 1, 2, 3), mapping("BRK_B", 2, 2, 3)]),
        false,
        &[
            bar_rec(rtype::OHLCV_1M, 1, t, [100, 110, 90, 105], 1),
            bar_rec(rtype::OHLCV_1M, 2, t, [100, 110, 90, 105], 1),
        ],
    );
    let (out, before) = out_with_a_file(d.path());
    let o = import(&[&file], &out, &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let last = o.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: ")
            && last.contains("brk.dbn: symbols BRK/B and BRK_B would both be written to")
            && last.contains("BRK_B.1m.rtb"),
        "{last}"
    );
    assert_eq!(snapshot(&out), before);
}
