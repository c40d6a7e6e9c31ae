//! Writes `journal.rtj` (every decision and execution event as a 72-byte record, in sequence
//! order) and `fills.csv` (one readable line per fill) into the run directory. Lines are built
//! with the engine's allocation-free formatters.

use super::PipelineError;
use super::messages::{Flow, FlowBody, JOURNAL_MAGIC, JOURNAL_RECORD, JOURNAL_VERSION};
use crate::records::ExecKind;
use crate::stats::Positions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The header line of `fills.csv`.
pub const FILLS_HEADER: &str = "ts,symbol,side,qty,price,commission,order_id,reason,position,realized_pnl";

pub(crate) struct JournalWriter {
    dir: PathBuf,
    journal: std::io::BufWriter<std::fs::File>,
    fills: std::io::BufWriter<std::fs::File>,
    line: Vec<u8>,
}

impl JournalWriter {
    pub fn create(dir: &Path) -> Result<Self, PipelineError> {
        let e = |path: &Path| {
            let path = path.to_path_buf();
            move |err| PipelineError::Journal { path, err }
        };
        std::fs::create_dir_all(dir).map_err(e(dir))?;
        let jpath = dir.join("journal.rtj");
        let mut journal = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&jpath).map_err(e(&jpath))?);
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&JOURNAL_MAGIC);
        header[8..10].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        header[10..12].copy_from_slice(&(JOURNAL_RECORD as u16).to_le_bytes());
        journal.write_all(&header).map_err(e(&jpath))?;
        let fpath = dir.join("fills.csv");
        let mut fills = std::io::BufWriter::with_capacity(1 << 18, std::fs::File::create(&fpath).map_err(e(&fpath))?);
        writeln!(fills, "{FILLS_HEADER}").map_err(e(&fpath))?;
        Ok(JournalWriter { dir: dir.to_path_buf(), journal, fills, line: Vec::with_capacity(128) })
    }

    /// Write one flow record (and a fills line for a fill; `positions` already include it).
    pub fn write(&mut self, f: &Flow, names: &[String], positions: &Positions) -> Result<(), PipelineError> {
        self.journal
            .write_all(&f.encode())
            .map_err(|err| PipelineError::Journal { path: self.dir.join("journal.rtj"), err })?;
        if let FlowBody::Report(r) = &f.body
            && r.exec_kind().is_some_and(ExecKind::is_fill)
        {
            use crate::text::{write_i64, write_px, write_ts, write_u64};
            let name = names.get(r.symbol.0 as usize).map_or("?", String::as_str);
            let side = r.exec_side().map_or("?", |s| s.as_str());
            let reason = r.exec_reason().map_or("?", |r| r.as_str());
            let book = positions.symbols.get(r.symbol.0 as usize);
            let b = &mut self.line;
            b.clear();
            write_ts(b, r.ts_event_ns);
            b.push(b',');
            b.extend_from_slice(name.as_bytes());
            b.push(b',');
            b.extend_from_slice(side.as_bytes());
            b.push(b',');
            write_u64(b, u64::from(r.fill_qty));
            b.push(b',');
            write_px(b, r.fill_px_e9, 2);
            b.push(b',');
            write_px(b, r.commission_e9, 2);
            b.push(b',');
            r.order_id.write_readable(b, name);
            b.push(b',');
            b.extend_from_slice(reason.as_bytes());
            b.push(b',');
            write_i64(b, book.map_or(0, |x| x.position));
            b.push(b',');
            let realized = book.map_or(0, |x| x.realized_pnl_e9);
            write_px(b, i64::try_from(realized).unwrap_or(if realized < 0 { i64::MIN } else { i64::MAX }), 2);
            b.push(b'\n');
            self.fills.write_all(b).map_err(|err| PipelineError::Journal { path: self.dir.join("fills.csv"), err })?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), PipelineError> {
        let jerr = |p: &str| {
            let path = self.dir.join(p);
            move |err| PipelineError::Journal { path, err }
        };
        self.journal.flush().map_err(jerr("journal.rtj"))?;
        self.fills.flush().map_err(jerr("fills.csv"))?;
        Ok(())
    }
}
