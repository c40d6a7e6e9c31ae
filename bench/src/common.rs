//! Helpers shared by the benchmarks: machine facts for the report header, the command line as
//! typed, and number formatting.

/// Facts about the machine that the reports print (read from `/proc` and `/sys` on Linux;
/// `"unknown"` where a file cannot be read).
#[derive(Debug, Clone)]
pub struct MachineInfo {
    /// `std::thread::available_parallelism()` (1 if unknown).
    pub nproc: usize,
    /// The first `model name` in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The `processor` entries in `/proc/cpuinfo`.
    pub online_cpus: usize,
    /// The current clocksource of `clocksource0`.
    pub clocksource: String,
    /// The kernel release.
    pub kernel: String,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Reads the machine facts (cheap: a few small files).
pub fn machine_info() -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let online_cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    MachineInfo {
        nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu_model,
        online_cpus,
        clocksource: read_trimmed("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_else(|| "unknown".to_owned()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// The 1, 5 and 15 minute load averages now, as `/proc/loadavg` prints them (`"0.52 0.58 0.59"`).
pub fn loadavg() -> String {
    read_trimmed("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The command line as typed (arguments with spaces or quotes get single-quoted).
pub fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                std::path::Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(a)
            } else {
                a
            };
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The build the figures come from (a debug build's numbers mean nothing).
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "DEBUG build (debug assertions on): these figures are not meaningful; use --release"
    } else {
        "release (debug assertions off; workspace profile: lto = \"fat\", codegen-units = 1)"
    }
}

/// Nanoseconds with a unit and about 3 significant digits (`850 ns`, `12.3 µs`, `4.56 ms`).
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e4 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e7 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// `n` with thousands separators (`1234567` -> `"1,234,567"`).
pub fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_ns_picks_a_unit() {
        assert_eq!(fmt_ns(850.0), "850 ns");
        assert_eq!(fmt_ns(1_234.0), "1.23 µs");
        assert_eq!(fmt_ns(12_345.0), "12.3 µs");
        assert_eq!(fmt_ns(4_560_000.0), "4.56 ms");
        assert_eq!(fmt_ns(1_748_000_000.0), "1.75 s");
        assert_eq!(fmt_ns(f64::NAN), "-");
    }

    #[test]
    fn fmt_count_groups_thousands() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1_000), "1,000");
        assert_eq!(fmt_count(39_000), "39,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(u64::MAX), "18,446,744,073,709,551,615");
    }
}
