//! Whole-config validation, run before anything is written: every size bounded (with the range in
//! the error), core ids that exist, non-negative costs; and warnings for shapes that run but
//! badly (spinning stages sharing cores, more shards than cores).

use super::{EngineConfig, WaitKind};
use crate::venue::SlippageConfig;

/// Largest `pipeline.shards`.
pub const MAX_SHARDS: usize = 256;
/// Smallest `pipeline.ring_size` and `pipeline.queue_size`.
pub const MIN_SIZE: usize = 64;
/// Largest `pipeline.ring_size`: 2^22 slots of 64 bytes = 256 MiB.
pub const MAX_RING_SIZE: usize = 1 << 22;
/// Largest `pipeline.queue_size`: 2^18 slots per side queue (there are 2 per shard plus 2).
pub const MAX_QUEUE_SIZE: usize = 1 << 18;
/// Largest `venue.max_volume_ppm` (one million parts per million = the whole bar's volume).
pub const MAX_VOLUME_PPM: u32 = 1_000_000;
/// Largest |`risk.day_utc_offset_s`|: 24 hours.
pub const MAX_DAY_OFFSET_S: i64 = 86_400;

/// A config value that cannot run: `key = value` and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value} ({fix})")]
pub struct ConfigError {
    /// Dotted key, e.g. `pipeline.ring_size`.
    pub key: String,
    /// The value as written.
    pub value: String,
    /// The allowed range or the fix.
    pub fix: String,
}

fn bad(key: &str, value: impl std::fmt::Display, fix: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), value: value.to_string(), fix: fix.into() }
}

impl EngineConfig {
    /// Check the whole config for a machine with `available_cores` cores (ids `0..available_cores`).
    /// Errors are values that cannot run; the returned warnings are shapes that run badly (one
    /// line each, without a `warning:` prefix).
    pub fn validate(&self, available_cores: usize) -> Result<Vec<String>, ConfigError> {
        let p = &self.pipeline;
        let mut warnings = Vec::new();
        if !(1..=MAX_SHARDS).contains(&p.shards) {
            return Err(bad("pipeline.shards", p.shards, format!("use 1..={MAX_SHARDS}")));
        }
        if !p.ring_size.is_power_of_two() || !(MIN_SIZE..=MAX_RING_SIZE).contains(&p.ring_size) {
            return Err(bad(
                "pipeline.ring_size",
                p.ring_size,
                format!("use a power of two in {MIN_SIZE}..={MAX_RING_SIZE} (2^22 slots x 64 bytes = 256 MiB)"),
            ));
        }
        if !(MIN_SIZE..=MAX_QUEUE_SIZE).contains(&p.queue_size) {
            return Err(bad("pipeline.queue_size", p.queue_size, format!("use {MIN_SIZE}..={MAX_QUEUE_SIZE}")));
        }
        let c = &p.cores;
        let named = [("sequencer", c.sequencer), ("risk", c.risk), ("exec", c.exec), ("journal", c.journal)];
        let shard_cores = c.shards.iter().enumerate().map(|(i, &id)| (format!("shards[{i}]"), id));
        for (name, id) in named.iter().filter_map(|(n, id)| id.map(|id| (n.to_string(), id))).chain(shard_cores) {
            if id >= available_cores {
                return Err(bad(
                    &format!("pipeline.cores.{name}"),
                    id,
                    format!(
                        "this machine has {available_cores} core(s), ids 0..={}; fix or remove [pipeline.cores]",
                        available_cores.saturating_sub(1)
                    ),
                ));
            }
        }
        let v = &self.venue;
        if v.commission_per_share_e9 < 0 {
            return Err(bad(
                "venue.commission_per_share_e9",
                v.commission_per_share_e9,
                "use >= 0 (1e-9 USD per share)",
            ));
        }
        for (key, ppm) in [
            ("venue.perturb.miss_entry_ppm", v.perturb.miss_entry_ppm),
            ("venue.perturb.partial_fill_ppm", v.perturb.partial_fill_ppm),
        ] {
            if ppm > MAX_VOLUME_PPM {
                return Err(bad(key, ppm, format!("use 0..={MAX_VOLUME_PPM} (parts per million); 0 = off")));
            }
        }
        if v.max_volume_ppm > MAX_VOLUME_PPM {
            return Err(bad("venue.max_volume_ppm", v.max_volume_ppm, format!("use 0..={MAX_VOLUME_PPM}; 0 = no cap")));
        }
        if let SlippageConfig::Fixed { px_e9 } = v.slippage
            && px_e9 < 0
        {
            return Err(bad("venue.slippage.px_e9", px_e9, "use >= 0 (1e-9 USD per share)"));
        }
        if self.risk.day_utc_offset_s.abs() > MAX_DAY_OFFSET_S {
            return Err(bad(
                "risk.day_utc_offset_s",
                self.risk.day_utc_offset_s,
                format!("use -{MAX_DAY_OFFSET_S}..={MAX_DAY_OFFSET_S} seconds"),
            ));
        }
        // Hot stages poll the main ring: the sequencer, every shard and risk.
        let hot = 2 + p.shards;
        if p.wait == WaitKind::Spin && hot > available_cores {
            warnings.push(format!(
                "pipeline.wait = \"spin\" with {hot} spinning stages (sequencer + {} shard(s) + risk) on {available_cores} core(s): stages that share a core are descheduled for whole time slices (runs can be 100x slower); use wait = \"auto\" or \"backoff\"",
                p.shards
            ));
        }
        if p.shards > available_cores {
            warnings.push(format!(
                "pipeline.shards = {} is more than this machine's {available_cores} core(s): extra shards add hand-offs, not speed",
                p.shards
            ));
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: &EngineConfig, cores: usize) -> String {
        cfg.validate(cores).unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_are_valid_without_warnings() {
        assert_eq!(EngineConfig::default().validate(2), Ok(vec![]));
        assert_eq!(EngineConfig::default().validate(1), Ok(vec![]));
    }

    #[test]
    fn sizes_are_bounded_and_the_error_states_the_range() {
        let mut c = EngineConfig::default();
        c.pipeline.ring_size = 1 << 40;
        assert_eq!(
            err(&c, 2),
            "pipeline.ring_size = 1099511627776 (use a power of two in 64..=4194304 (2^22 slots x 64 bytes = 256 MiB))"
        );
        c.pipeline.ring_size = 1 << 62;
        assert!(err(&c, 2).starts_with("pipeline.ring_size = 4611686018427387904 (use a power of two in 64..=4194304"));
        c.pipeline.ring_size = 100;
        assert!(err(&c, 2).contains("power of two"));
        c.pipeline.ring_size = MAX_RING_SIZE;
        assert!(c.validate(2).is_ok());
        c.pipeline.queue_size = 16_777_216;
        assert_eq!(err(&c, 2), "pipeline.queue_size = 16777216 (use 64..=262144)");
        c.pipeline.queue_size = 63;
        assert!(err(&c, 2).contains("64..=262144"));
        c.pipeline.queue_size = 64;
        c.pipeline.shards = 257;
        assert_eq!(err(&c, 2), "pipeline.shards = 257 (use 1..=256)");
    }

    #[test]
    fn core_ids_must_exist() {
        let mut c = EngineConfig::default();
        c.pipeline.cores.risk = Some(1);
        assert!(c.validate(2).is_ok());
        c.pipeline.cores.risk = Some(7);
        assert_eq!(
            err(&c, 2),
            "pipeline.cores.risk = 7 (this machine has 2 core(s), ids 0..=1; fix or remove [pipeline.cores])"
        );
        c.pipeline.cores.risk = None;
        c.pipeline.cores.shards = vec![0, 2];
        assert!(err(&c, 2).starts_with("pipeline.cores.shards[1] = 2 "));
    }

    #[test]
    fn costs_must_not_be_negative() {
        let mut c = EngineConfig::default();
        c.venue.commission_per_share_e9 = -1;
        assert_eq!(err(&c, 2), "venue.commission_per_share_e9 = -1 (use >= 0 (1e-9 USD per share))");
        c.venue.commission_per_share_e9 = 0;
        c.venue.slippage = SlippageConfig::Fixed { px_e9: -5 };
        assert!(err(&c, 2).starts_with("venue.slippage.px_e9 = -5"));
        c.venue.slippage = SlippageConfig::None;
        c.venue.max_volume_ppm = 1_000_001;
        assert!(err(&c, 2).starts_with("venue.max_volume_ppm = 1000001"));
        c.venue.max_volume_ppm = 0;
        c.venue.perturb.miss_entry_ppm = 2_000_000;
        assert!(err(&c, 2).starts_with("venue.perturb.miss_entry_ppm = 2000000"));
        c.venue.perturb.miss_entry_ppm = 0;
        c.venue.perturb.partial_fill_ppm = 1_000_001;
        assert!(err(&c, 2).starts_with("venue.perturb.partial_fill_ppm = 1000001"));
        c.venue.perturb.partial_fill_ppm = 0;
        c.venue.max_volume_ppm = 0;
        c.risk.day_utc_offset_s = 90_000;
        assert!(err(&c, 2).starts_with("risk.day_utc_offset_s = 90000"));
    }

    #[test]
    fn spinning_or_sharding_past_the_cores_warns() {
        let mut c = EngineConfig::default();
        c.pipeline.wait = WaitKind::Spin;
        // sequencer + 1 shard + risk = 3 hot stages.
        let w = c.validate(2).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("3 spinning stages") && w[0].contains("2 core(s)"), "{w:?}");
        assert_eq!(c.validate(3).unwrap(), Vec::<String>::new());
        c.pipeline.wait = WaitKind::Auto;
        c.pipeline.shards = 3;
        let w = c.validate(2).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("pipeline.shards = 3 is more than this machine's 2 core(s)"), "{w:?}");
        assert!(c.validate(4).unwrap().is_empty());
    }
}
