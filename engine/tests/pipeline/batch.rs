//! Lock-step batches (`engine::pipeline::run_batch`): each run of a batch is exactly the same
//! run alone, and specs a batch cannot keep in step are refused.

use super::{BusyFactory, journal_bytes, run_dir, write_random};
use engine::merge::BarSet;
use engine::pipeline::config::EngineConfig;
use engine::pipeline::{BarReplay, RunSpec};

#[test]
fn a_lock_step_batch_gives_each_run_exactly_its_own_output_and_journal() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_random(&data, 3, 1_500, 7);
    let set = BarSet::open_dir(&data, 2).unwrap();
    // Differently perturbed venues (so the runs really differ), one with a lower position cap.
    let cfgs: Vec<EngineConfig> = (0..5u64)
        .map(|i| {
            let mut c = EngineConfig::default();
            let p = &mut c.venue.perturb;
            (p.seed, p.slippage_sd_bps, p.miss_entry_ppm, p.partial_fill_ppm) = (i + 1, 5, 200_000, 300_000);
            if i == 3 {
                c.risk.max_position_shares = 2;
            }
            c
        })
        .collect();
    let dirs: Vec<_> = (0..cfgs.len()).map(|i| d.path().join(format!("batch{i}"))).collect();
    let specs = cfgs
        .iter()
        .zip(&dirs)
        .map(|(c, dir)| RunSpec::new(c, set.symbols(), &BusyFactory).bars(&set).out_dir(dir))
        .collect();
    let outs = engine::pipeline::run_batch(specs, BarReplay::zero_copy(set.merged())).unwrap();
    assert_eq!(outs.len(), cfgs.len());
    let mut journals = std::collections::BTreeSet::new();
    for (i, (cfg, got)) in cfgs.iter().zip(&outs).enumerate() {
        let alone_dir = d.path().join(format!("alone{i}"));
        let alone = run_dir(&data, Some(&alone_dir), cfg, &BusyFactory);
        assert_eq!(got.positions.totals(), alone.positions.totals(), "run {i}");
        assert_eq!(got.counters, alone.counters, "run {i}");
        assert_eq!((got.max_drawdown_e9, &got.daily_equity), (alone.max_drawdown_e9, &alone.daily_equity), "run {i}");
        assert_eq!(got.rejects, alone.rejects, "run {i}");
        assert!(journal_bytes(&dirs[i]) == journal_bytes(&alone_dir), "run {i}: the journals differ");
        if i == 3 {
            assert!(got.rejects.iter().sum::<u64>() > 100, "run 3's cap refuses orders: {:?}", got.rejects);
        } else {
            assert!(got.positions.totals().0 > 100, "run {i} trades");
        }
        journals.insert(journal_bytes(&dirs[i]).0);
    }
    assert_eq!(journals.len(), cfgs.len(), "every seed gives its own run");
}

#[test]
fn a_lock_step_batch_refuses_runs_it_cannot_keep_in_step() {
    let d = tempfile::tempdir().unwrap();
    write_random(d.path(), 1, 50, 1);
    let set = BarSet::open_dir(d.path(), 2).unwrap();
    let a = EngineConfig::default();
    let mut b = EngineConfig::default();
    b.pipeline.timer_ms = 250;
    let batch = |cfgs: &[&EngineConfig]| {
        let specs = cfgs.iter().map(|c| RunSpec::new(c, set.symbols(), &BusyFactory).bars(&set)).collect();
        engine::pipeline::run_batch(specs, BarReplay::zero_copy(set.merged()))
    };
    let err = batch(&[&a, &b]).unwrap_err().to_string();
    assert!(err.contains("timer_ms"), "{err}");
    assert!(batch(&[]).unwrap_err().to_string().contains("at least one run"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let specs = vec![RunSpec::new(&a, set.symbols(), &BusyFactory).bars(&set).stop(&stop)];
    let err = engine::pipeline::run_batch(specs, BarReplay::zero_copy(set.merged())).unwrap_err().to_string();
    assert!(err.contains("replays only"), "{err}");
    assert_eq!(batch(&[&a, &a]).unwrap().len(), 2);
}
