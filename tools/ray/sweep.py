#!/usr/bin/env python3
"""Run a `ringtape sweep` on Ray: one Ray task per shard, then the merge.

Each task runs the `ringtape` binary on its slice (`--shard I/N`) into its own directory; the
driver then runs `ringtape sweep ... --merge DIR... --out OUT`, which checks the shards belong to
one study and cover it exactly once, runs the out-of-sample tests and writes the usual files.
The result is byte-for-byte what `ringtape sweep` gives in one process.

    pip install ray
    python3 tools/ray/sweep.py --ringtape target/release/ringtape --shards 8 --out runs/sweep \\
        -- --strategy sma_cross --set fast=5,10,20 --set slow=30,60 --folds 3

Arguments after `--` are the sweep's own (never --shard, --merge or --out). Without a running
cluster (`RAY_ADDRESS` unset) it starts a local Ray instance; `--address auto` joins one. The
binary and the data must be reachable from every node at the same paths (a shared file system),
or pass `--data` paths that exist everywhere.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def run_shard(ringtape, sweep_args, index, count, workdir):
    out = os.path.join(workdir, f"shard-{index}")
    cmd = [ringtape, "sweep", *sweep_args, "--shard", f"{index}/{count}", "--out", out, "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"shard {index}/{count} failed ({done.returncode}): {done.stderr.strip()}")
    return out


def main(argv):
    if "--" in argv:
        split = argv.index("--")
        own, sweep_args = argv[:split], argv[split + 1 :]
    else:
        own, sweep_args = argv, []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ringtape", required=True, help="path to the ringtape binary (same on every node)")
    p.add_argument("--shards", type=int, required=True, help="number of Ray tasks")
    p.add_argument("--out", required=True, help="the merged study's directory")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local instance")
    p.add_argument("--workdir", default=None, help="where shard directories go (default: a temp dir)")
    a = p.parse_args(own)
    for bad in ("--shard", "--merge", "--out"):
        if bad in sweep_args:
            p.error(f"{bad} is the driver's to set; leave it out of the sweep's arguments")
    if a.shards < 1:
        p.error("--shards must be at least 1")
    ringtape = os.path.abspath(a.ringtape)

    import ray  # imported here so --help works without Ray installed

    ray.init(address=a.address, num_cpus=a.num_cpus, include_dashboard=False, log_to_driver=False)
    workdir = a.workdir or tempfile.mkdtemp(prefix="ringtape-sweep-")
    try:
        task = ray.remote(run_shard)
        dirs = ray.get([task.remote(ringtape, sweep_args, i, a.shards, workdir) for i in range(a.shards)])
    finally:
        ray.shutdown()
    merge = [ringtape, "sweep", *sweep_args, "--merge", *dirs, "--out", a.out]
    done = subprocess.run(merge)
    if done.returncode == 0 and a.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
