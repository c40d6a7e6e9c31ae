#!/usr/bin/env bash
# The live viewer's cost to a full-speed backtest (BENCHMARKS.md section 6): the same replay
#   plain        no viewer (journal.inputs = "reference")
#   inputs-all   no viewer, every input journaled (what --view sets, so replay reproduces hotkeys)
#   taps         --view with the window closed after one frame: pacer, ingress, plot and flow taps
#   view         --view at max speed, the window drawing at up to 60 fps (--view-fps 60)
#   view30       the same at up to 30 fps
# on the threads and the inline topology, REPS times each, interleaved. Prints one line per run:
#   VARIANT TOPOLOGY M_BARS_PER_S [| N drawn a second]
# Needs an X display for the view variants (e.g. Xvfb :97 & DISPLAY=:97) and a release build:
#   cargo build --release -p ringtape-tools --bin ringtape
#   target/release/ringtape synth --symbols 10 --days 1600 --interval 1m --seed 1 --out /tmp/D6
#   REPS=5 bench/viewer_overhead.sh /tmp/D6
set -euo pipefail
DATA=${1:?usage: viewer_overhead.sh DATA_DIR}
R=${RINGTAPE:-target/release/ringtape}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for t in threads inline; do
  printf '[pipeline]\ntopology = "%s"\n' "$t" > "$TMP/$t.toml"
  printf '[pipeline]\ntopology = "%s"\n[journal]\ninputs = "all"\n' "$t" > "$TMP/$t-all.toml"
done
bps() {
  python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['perf']; print(round(p['bars_per_s_engine']/1e6,2))" "$TMP/r/summary.json"
}
run() { "$R" backtest --data "$DATA" --quiet --out "$TMP/r" --force "$@" 2>&1; }
for _ in $(seq "${REPS:-3}"); do
  for t in threads inline; do
    run --config "$TMP/$t.toml" >/dev/null; echo "plain $t $(bps)"
    run --config "$TMP/$t-all.toml" >/dev/null; echo "inputs-all $t $(bps)"
    run --config "$TMP/$t.toml" --view --view-speed max --view-frames 1 >/dev/null; echo "taps $t $(bps)"
    for fps in 60 30; do
      d=$(run --config "$TMP/$t.toml" --view --view-speed max --view-close-at-end --view-fps "$fps" | grep -o "[0-9.]* drawn a second" || true)
      v=view; [ "$fps" = 30 ] && v=view30
      echo "$v $t $(bps) | $d"
    done
  done
done
