//! The recorder: the last stage. It follows the decision flow in sequence order, keeps positions,
//! PnL and round trips (the position tracker), and writes the journal and `fills.csv`. It only
//! observes: nothing it does feeds back into decisions.

use super::PipelineError;
use super::journal_writer::JournalWriter;
use super::messages::{Flow, FlowBody};
use crate::records::{Lifecycle, unpack_name};
use crate::stats::Positions;

pub(crate) struct Recorder {
    pub positions: Positions,
    journal: Option<JournalWriter>,
    names: Vec<String>,
    /// Journal records written (or that would have been, without a journal).
    pub records: u64,
}

impl Recorder {
    pub fn new(names: &[String], journal: Option<JournalWriter>) -> Self {
        Recorder { positions: Positions::new(names.len()), journal, names: names.to_vec(), records: 0 }
    }

    #[inline]
    pub fn on_flow(&mut self, f: &Flow) -> Result<(), PipelineError> {
        match &f.body {
            FlowBody::Report(r) => self.positions.on_report(r),
            FlowBody::Lifecycle { symbol, step: Lifecycle::Added, name, .. } => {
                let i = symbol.0 as usize;
                if self.names.len() <= i {
                    self.names.resize(i + 1, String::new());
                }
                self.names[i] = unpack_name(name).unwrap_or("?").to_string();
                self.positions.ensure_symbols(i + 1);
            }
            _ => {}
        }
        self.records += 1;
        if let Some(j) = self.journal.as_mut() {
            j.write(f, &self.names, &self.positions)?;
        }
        Ok(())
    }

    /// Flush the files; returns the positions.
    pub fn finish(self) -> Result<Positions, PipelineError> {
        if let Some(j) = self.journal {
            j.finish()?;
        }
        Ok(self.positions)
    }
}
