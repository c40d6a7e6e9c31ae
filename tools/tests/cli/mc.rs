//! `ringtape mc`: a seeded Monte Carlo study over the built-in data.

use super::{assert_one_line_error, ringtape, s};

#[test]
fn a_study_is_reproducible_from_its_master_seed_on_any_number_of_threads_and_batch_size() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    let o = ringtape(&["mc", "--runs", "24", "--seed", "7", "--threads", "1", "--batch", "1", "--out", &s(&a)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("probability of a loss"), "{}", o.stdout);
    let o = ringtape(&["mc", "--runs", "24", "--seed", "7", "--threads", "2", "--out", &s(&b), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Lock-step batches of 7 (the last one short): each run is still exactly itself.
    let o = ringtape(&["mc", "--runs", "24", "--seed", "7", "--batch", "7", "--out", &s(&c), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let runs = std::fs::read_to_string(a.join("runs.csv")).unwrap();
    assert_eq!(runs, std::fs::read_to_string(b.join("runs.csv")).unwrap(), "same seeds, same runs");
    assert_eq!(runs, std::fs::read_to_string(c.join("runs.csv")).unwrap(), "any batch size, same runs");
    assert_eq!(runs.lines().count(), 25);
    // The histograms: 24 runs in blue bars, the baseline as a red line.
    for f in ["net_pnl.png", "max_drawdown.png"] {
        let (w, h, px) = viz::png::decode(&std::fs::read(a.join(f)).unwrap()).unwrap();
        assert_eq!((w, h), (800, 300), "{f}");
        assert!(px.iter().filter(|&&p| p == 0x0044_77AA).count() > 500, "{f}: bars drawn");
        assert!(px.iter().filter(|&&p| p == 0x00CC_0000).count() >= 200, "{f}: the baseline marked");
    }
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("mc.json")).unwrap()).unwrap();
    // The baseline is the unperturbed reference backtest (-289.00 USD, 64 fills).
    assert_eq!((j["baseline"]["net_pnl_usd"].as_f64(), j["baseline"]["fills"].as_u64()), (Some(-289.0), Some(64)));
    // The default knobs cost money and miss entries in some runs; runs differ from each other.
    assert!(j["net_pnl_usd"]["p50"].as_f64().unwrap() < -289.0, "{j}");
    assert!(j["missed_entries"]["max"].as_f64().unwrap() >= 1.0, "{j}");
    let pnls: std::collections::BTreeSet<&str> = runs.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert!(pnls.len() > 12, "perturbed runs differ: {pnls:?}");
    let o = ringtape(&["mc", "--runs", "24", "--seed", "8", "--out", &s(&a), "--force", "--quiet"]);
    assert_eq!(o.code, 0);
    assert_ne!(runs, std::fs::read_to_string(a.join("runs.csv")).unwrap(), "another seed, another study");
}

#[test]
fn latency_alone_is_deterministic_and_bad_usage_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    std::fs::write(&cfg, "[venue.perturb]\nlatency_bars = 1\n").unwrap();
    let out = d.path().join("mc");
    let o = ringtape(&["mc", "--runs", "5", "--config", &s(&cfg), "--out", &s(&out), "--quiet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let pnls: std::collections::BTreeSet<&str> = runs.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(pnls.len(), 1, "latency draws nothing at random: {pnls:?}");
    assert_ne!(pnls.first().copied(), Some("-289.0000"), "a bar later is another result");
    // By knob: only the knobs that are on, each alone.
    let o = ringtape(&["mc", "--runs", "3", "--config", &s(&cfg), "--out", &s(&out), "--force", "--by-knob"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("each knob alone") && o.stdout.contains("latency_bars"), "{}", o.stdout);
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("mc.json")).unwrap()).unwrap();
    assert_eq!(j["by_knob"].as_object().unwrap().keys().collect::<Vec<_>>(), ["latency_bars"]);
    let o = ringtape(&["mc", "--runs", "0", "--out", &s(&d.path().join("x"))]);
    assert_one_line_error(&o, &["--runs 0"]);
    let o = ringtape(&["mc", "--runs", "2", "--out", &s(&out)]);
    assert_one_line_error(&o, &["already exists", "--force"]);
}

#[test]
fn zero_perturbation_reproduces_the_backtest_and_more_slippage_costs_more() {
    let d = tempfile::tempdir().unwrap();
    let median = |sd: u32| -> f64 {
        let cfg = d.path().join(format!("c{sd}.toml"));
        std::fs::write(&cfg, format!("[venue.perturb]\nslippage_sd_bps = {sd}\n")).unwrap();
        let out = d.path().join(format!("mc{sd}"));
        let o = ringtape(&["mc", "--runs", "16", "--config", &s(&cfg), "--out", &s(&out), "--quiet"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
        if sd == 0 {
            // Every seed gives exactly the plain backtest: -289.00 USD over 64 fills.
            for l in runs.lines().skip(1) {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!((f[2], f[7]), ("-289.0000", "64"), "{l}");
            }
        }
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("mc.json")).unwrap()).unwrap();
        j["net_pnl_usd"]["p50"].as_f64().unwrap()
    };
    let (m0, m1, m5, m20) = (median(0), median(1), median(5), median(20));
    assert_eq!(m0, -289.0);
    assert!(m0 > m1 && m1 > m5 && m5 > m20, "more slippage, lower median PnL: {m0} {m1} {m5} {m20}");
}
