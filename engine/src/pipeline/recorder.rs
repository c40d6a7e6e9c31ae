//! The recorder: the last stage. It follows the decision flow in sequence order, keeps positions,
//! PnL and round trips (the position tracker), and writes the journal and `fills.csv`. It only
//! observes: nothing it does feeds back into decisions.

use super::PipelineError;
use super::counters::Gauges;
use super::journal_writer::JournalWriter;
use super::messages::{Flow, FlowBody};
use crate::records::{ControlKind, ExecKind, Lifecycle, Reason, ReconcilePolicy, unpack_name};
use crate::stats::Positions;
use std::sync::atomic::Ordering;

pub(crate) struct Recorder<'c> {
    pub positions: Positions,
    observer: Option<&'c (dyn Fn(&Flow) + Sync)>,
    gauges: &'c Gauges,
    journal: Option<JournalWriter>,
    names: Vec<String>,
    /// Journal records written (or that would have been, without a journal).
    pub records: u64,
}

impl<'c> Recorder<'c> {
    pub fn new(
        names: &[String],
        journal: Option<JournalWriter>,
        gauges: &'c Gauges,
        observer: Option<&'c (dyn Fn(&Flow) + Sync)>,
    ) -> Self {
        Recorder {
            positions: Positions::new(names.len()),
            observer,
            gauges,
            journal,
            names: names.to_vec(),
            records: 0,
        }
    }

    #[inline]
    pub fn on_flow(&mut self, f: &Flow) -> Result<(), PipelineError> {
        match &f.body {
            FlowBody::Report(r) => {
                let fill = matches!(ExecKind::from_raw(r.kind), Some(ExecKind::Filled | ExecKind::PartiallyFilled));
                let i = r.symbol.0 as usize;
                let before = self.positions.symbols.get(i).map_or(0, |b| b.realized_pnl_e9);
                self.positions.on_report(r);
                if fill {
                    let after = self.positions.symbols.get(i).map_or(0, |b| b.realized_pnl_e9);
                    let delta = i64::try_from(after - before).unwrap_or(0);
                    self.gauges.fills.fetch_add(1, Ordering::Relaxed);
                    self.gauges.realized_pnl_e9.fetch_add(delta, Ordering::Relaxed);
                }
            }
            // A reconcile that adopts the broker's position moves the book as risk's.
            FlowBody::Input(rec) if rec.kind == crate::records::EventKind::Control.raw() => {
                let ev = rec.to_event();
                if let Some(c) = ev.as_control()
                    && c.kind == ControlKind::Reconcile.raw()
                    && ReconcilePolicy::from_raw(c.args[2] as u8) == Some(ReconcilePolicy::Adopt)
                {
                    self.positions.adopt(ev.symbol, c.args[0], c.args[1]);
                }
            }
            FlowBody::Decision { reason: Reason::None, .. } => {
                self.gauges.orders.fetch_add(1, Ordering::Relaxed);
            }
            FlowBody::Decision { .. } => {
                self.gauges.refused.fetch_add(1, Ordering::Relaxed);
            }
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
        if let Some(f_obs) = self.observer {
            f_obs(f);
        }
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
