//! `ringtape report`: the HTML dashboard over run directories.

use super::{assert_one_line_error, ringtape, s};

#[test]
fn the_report_has_a_row_and_a_chart_per_run() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("bt");
    assert_eq!(ringtape(&["backtest", "--out", &s(&run), "--quiet"]).code, 0);
    let html = d.path().join("r.html");
    let o = ringtape(&["report", &s(&run), &s(&run), "--out", &s(&html)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(text.matches("<td class=neg>-289.00</td>").count(), 2, "one row per run, the reference result");
    let uris: Vec<&str> = text.split("data:image/png;base64,").skip(1).map(|r| r.split('"').next().unwrap()).collect();
    assert_eq!(uris.len(), 2);
    // The chart decodes as a PNG of the promised size, with the curve drawn in it.
    let b64 = uris[0].as_bytes();
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut bytes = Vec::new();
    for q in b64.chunks(4) {
        let n = q.iter().take_while(|&&c| c != b'=').fold(0u32, |a, &c| (a << 6) | u32::from(val(c)));
        let k = q.iter().take_while(|&&c| c != b'=').count();
        let n = n << (6 * (4 - k));
        bytes.extend_from_slice(&n.to_be_bytes()[1..k]);
    }
    let (w, h, px) = viz::png::decode(&bytes).unwrap();
    assert_eq!((w, h), (800, 220));
    assert!(px.iter().filter(|&&p| p == 0x00CC_0000).count() > 50, "red (losing) curve drawn");
    assert!(px.iter().filter(|&&p| p == 0x0000_8800).count() > 20, "green (winning) curve drawn");
}

#[test]
fn a_directory_that_is_not_a_run_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let o = ringtape(&["report", &s(d.path()), "--out", &s(&d.path().join("r.html"))]);
    assert_one_line_error(&o, &["no summary.json", "not a run directory"]);
    assert!(!d.path().join("r.html").exists());
}
