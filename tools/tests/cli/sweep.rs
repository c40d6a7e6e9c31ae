//! `ringtape sweep`: a grid over strategy parameters with walk-forward folds.

use super::{assert_one_line_error, ringtape, s};

#[test]
fn each_fold_chooses_its_in_sample_best_and_reports_it_out_of_sample() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let args = ["sweep", "--set", "fast=5,10,20", "--set", "slow=30,60", "--folds", "3"];
    let o = ringtape(&[&args[..], &["--out", &s(&a), "--threads", "2"]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("out of sample, all folds"), "{}", o.stdout);
    let o = ringtape(&[&args[..], &["--out", &s(&b), "--threads", "1", "--quiet"]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let read = |p: &std::path::Path, f: &str| std::fs::read_to_string(p.join(f)).unwrap();
    assert_eq!(read(&a, "folds.csv"), read(&b, "folds.csv"), "threads change nothing");
    assert_eq!(read(&a, "grid.csv"), read(&b, "grid.csv"));
    // grid.csv: 3 folds x 6 combinations; each fold's choice is its in-sample maximum.
    let grid: Vec<(usize, String, f64)> = read(&a, "grid.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].trim_matches('"').to_string(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(grid.len(), 18);
    let folds = read(&a, "folds.csv");
    let folds: Vec<&str> = folds.lines().skip(1).collect();
    assert_eq!(folds.len(), 3);
    for (k, line) in folds.iter().enumerate() {
        let chosen = line.split(',').nth(1).unwrap().trim_matches('"');
        let best = grid.iter().filter(|g| g.0 == k).map(|g| g.2).fold(f64::MIN, f64::max);
        let chosen_pnl = grid.iter().find(|g| g.0 == k && g.1 == chosen).unwrap().2;
        assert_eq!(chosen_pnl, best, "fold {k} chose its in-sample best: {line}");
    }
    let j: serde_json::Value = serde_json::from_str(&read(&a, "sweep.json")).unwrap();
    let oos: f64 =
        j["folds"].as_array().unwrap().iter().map(|f| f["out_of_sample"]["net_pnl_usd"].as_f64().unwrap()).sum();
    assert_eq!(j["out_of_sample_net_pnl_usd"].as_f64().unwrap(), oos);
}

#[test]
fn sweep_usage_errors_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = s(&d.path().join("o"));
    assert_one_line_error(&ringtape(&["sweep", "--set", "fast", "--out", &out]), &["--set fast", "KEY=A,B,C"]);
    assert_one_line_error(&ringtape(&["sweep", "--set", "fast=5", "--folds", "0", "--out", &out]), &["--folds 0"]);
    assert_one_line_error(&ringtape(&["sweep", "--set", "fast=40", "--out", &out]), &["--set fast = 40"]);
    assert_one_line_error(
        &ringtape(&["sweep", "--set", "fast=5", "--folds", "9", "--out", &out]),
        &["too few trading days"],
    );
}

#[test]
fn shards_merged_give_the_same_study_and_bad_merges_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| s(&d.path().join(n));
    let args = ["sweep", "--set", "fast=5,10,20", "--set", "slow=30,60", "--folds", "2", "--quiet"];
    assert_eq!(ringtape(&[&args[..], &["--out", &p("full")]].concat()).code, 0);
    for i in 0..3 {
        let o = ringtape(&[&args[..], &["--shard", &format!("{i}/3"), "--out", &p(&format!("s{i}"))]].concat());
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(d.path().join(format!("s{i}/shard.json")).is_file());
        assert!(!d.path().join(format!("s{i}/folds.csv")).exists(), "a shard only fits");
    }
    let o = ringtape(&[&args[..], &["--merge", &p("s0"), &p("s1"), &p("s2"), "--out", &p("merged")]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let read = |dir: &str, f: &str| std::fs::read_to_string(d.path().join(dir).join(f)).unwrap();
    for f in ["grid.csv", "folds.csv", "sweep.json"] {
        assert_eq!(read("full", f), read("merged", f), "{f}: sharded and merged = run here");
    }
    let o = ringtape(&[&args[..], &["--merge", &p("s0"), &p("s1"), "--out", &p("m2")]].concat());
    assert_one_line_error(&o, &["fitting runs are in no shard"]);
    let o = ringtape(&[&args[..], &["--merge", &p("s0"), &p("s0"), &p("s1"), &p("s2"), "--out", &p("m3")]].concat());
    assert_one_line_error(&o, &["in two shards"]);
    let other = ["sweep", "--set", "fast=5,10", "--set", "slow=30,60", "--folds", "2", "--quiet"];
    let o = ringtape(&[&other[..], &["--merge", &p("s0"), &p("s1"), &p("s2"), "--out", &p("m4")]].concat());
    assert_one_line_error(&o, &["a shard of another study"]);
    assert_one_line_error(&ringtape(&[&args[..], &["--shard", "3/3", "--out", &p("x")]].concat()), &["--shard 3/3"]);
}

#[test]
fn a_toml_grid_is_the_same_study_as_its_sets_and_monte_carlo_seeds_average_perturbed_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    std::fs::write(p("grid.toml"), "[grid]\nfast = [5, 10]\nslow = [30, 60]\n").unwrap();
    let base = ["sweep", "--folds", "2", "--quiet", "--threads", "2"];
    let o = ringtape(&[&base[..], &["--grid", &s(&p("grid.toml")), "--out", &s(&p("g"))]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = ringtape(&[&base[..], &["--set", "fast=5,10", "--set", "slow=30,60", "--out", &s(&p("s"))]].concat());
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(read(&p("g"), "grid.csv"), read(&p("s"), "grid.csv"), "the file and the flags give one grid");
    assert_eq!(read(&p("g"), "folds.csv"), read(&p("s"), "folds.csv"));

    // Crossed with Monte Carlo seeds: each score is the mean of the perturbed runs; more
    // slippage can only cost, so every combination scores below its unperturbed self.
    std::fs::write(p("mc.toml"), "[venue.perturb]\nseed = 7\nslippage_sd_bps = 20\n").unwrap();
    let mc = |out: &str| {
        ringtape(
            &[
                &base[..],
                &["--grid", &s(&p("grid.toml")), "--config", &s(&p("mc.toml")), "--mc-seeds", "3", "--out", out],
            ]
            .concat(),
        )
    };
    let o = mc(&s(&p("m1")));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = mc(&s(&p("m2")));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(read(&p("m1"), "grid.csv"), read(&p("m2"), "grid.csv"), "the same seeds, the same study");
    let pnl = |dir: &str| -> Vec<f64> {
        read(&p(dir), "grid.csv").lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect()
    };
    let (plain, perturbed) = (pnl("g"), pnl("m1"));
    assert_eq!(plain.len(), perturbed.len());
    assert!(plain.iter().zip(&perturbed).all(|(a, b)| b <= a), "{plain:?} vs {perturbed:?}");
    assert!(plain.iter().zip(&perturbed).any(|(a, b)| b < a), "the knob changed something");

    // Seeds without a knob would all be the same run: refused in one line.
    assert_one_line_error(
        &ringtape(&[&base[..], &["--set", "fast=5", "--mc-seeds", "3", "--out", &s(&p("x"))]].concat()),
        &["--mc-seeds 3", "[venue.perturb]"],
    );
    std::fs::write(p("bad.toml"), "fast = 5\n").unwrap();
    assert_one_line_error(
        &ringtape(&[&base[..], &["--grid", &s(&p("bad.toml")), "--out", &s(&p("y"))]].concat()),
        &["bad.toml", "fast = 5", "fast = [5, 10, 20]"],
    );
}
