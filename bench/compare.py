#!/usr/bin/env python3
"""Runs `stn bench` and its PyTorch peer (bench/torch_bench.py) side by side, alternating them
for several rounds on the same machine, and prints medians and the ratio.

    python3 bench/compare.py train            # training steps, batch 64
    python3 bench/compare.py eval             # evaluation of the 10000 test images
    python3 bench/compare.py ops              # affine_grid + grid_sample fwd+bwd
    python3 bench/compare.py all --rounds 5 --markdown

Needs `cargo build --release` and a PyTorch venv (python3 -m venv /tmp/torchref &&
/tmp/torchref/bin/pip install torch numpy); --python points at another interpreter. Peak RSS
is each process's own high-water mark (VmHWM / ru_maxrss), as each reports it.
"""
import argparse, json, os, platform, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "eval", "ops", "all"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--python", default="/tmp/torchref/bin/python")
    p.add_argument("--stn", default=os.path.join(ROOT, "target", "release", "stn"))
    p.add_argument("--markdown", action="store_true", help="print a table for BENCHMARKS.md")
    a = p.parse_args()
    whats = ["train", "eval", "ops"] if a.what == "all" else [a.what]
    rows = []
    for what in whats:
        ours, theirs = {}, {}
        for r in range(a.rounds):
            for name, cmd, store in [
                ("stn", [a.stn, "bench", what, "--json", "--batches", str(a.batches)], ours),
                ("torch", [a.python, "bench/torch_bench.py", what, "--batches", str(a.batches)], theirs),
            ]:
                for res in run(cmd):
                    store.setdefault(res["name"], []).append(res)
                    print(f"round {r + 1} {name:5} {res['name']}: {res['images_per_second']:.0f} images/s",
                          file=sys.stderr, flush=True)
        for key in ours:
            # Our fused op is timed against PyTorch's two ops doing the same computation.
            peer = key.replace("ops fused", "ops")
            o = statistics.median(x["images_per_second"] for x in ours[key])
            t = statistics.median(x["images_per_second"] for x in theirs[peer])
            orss = max(x["peak_rss_bytes"] or 0 for x in ours[key]) / 1e6
            trss = max(x["peak_rss_bytes"] or 0 for x in theirs[peer]) / 1e6
            rows.append((key, o, t, o / t, orss, trss))
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; {a.rounds} rounds, medians")
    if a.markdown:
        print("| benchmark | stn images/s | PyTorch images/s | ratio | stn peak RSS | PyTorch peak RSS |")
        print("|---|---|---|---|---|---|")
        for k, o, t, r, orss, trss in rows:
            print(f"| {k} | {o:,.0f} | {t:,.0f} | {r:.2f}x | {orss:.0f} MB | {trss:.0f} MB |")
    else:
        for k, o, t, r, orss, trss in rows:
            print(f"{k:18} stn {o:9.0f}/s  torch {t:9.0f}/s  ratio {r:5.2f}x  RSS {orss:.0f} MB vs {trss:.0f} MB")


if __name__ == "__main__":
    main()
