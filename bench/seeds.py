#!/usr/bin/env python3
"""Test accuracy of the tutorial recipe over several seeds, ours and PyTorch's, side by side.

    python3 bench/seeds.py --epochs 1 --seeds 1-8
    python3 bench/seeds.py --epochs 20 --seeds 1-3 --only stn

One run's accuracy after a given epoch moves by tenths of a percent from seed to seed (and by
whole percents after epoch 1), on both sides, so accuracy parity is judged on the
distribution, not on one run. Ours runs `target/release/stn train --seed N`, PyTorch's
`bench/torch_reference.py --seed N` (the same recipe: SGD lr 0.01, batch 64). Needs the venv
described in bench/compare.py.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seeds(spec):
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def ours(stn, epochs, seed, data):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        subprocess.run([stn, "train", "--epochs", str(epochs), "--seed", str(seed), "--data", data,
                        "--out", run_dir], cwd=ROOT, check=True, capture_output=True)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return [json.loads(line)["test_accuracy"] * 100 for line in f]


def theirs(python, epochs, seed, data):
    out = subprocess.run([python, "bench/torch_reference.py", "--data", data, "--epochs", str(epochs),
                          "--seed", str(seed)], cwd=ROOT, check=True, capture_output=True, text=True)
    return [json.loads(l)["test_acc"] * 100 for l in out.stdout.splitlines() if '"test_acc"' in l]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seeds", default="1-5", help="e.g. 1-8 or 1,3,5")
    p.add_argument("--only", choices=["stn", "torch"], help="run one side only")
    p.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    p.add_argument("--python", default="/tmp/torchref/bin/python")
    p.add_argument("--stn", default=os.path.join(ROOT, "target", "release", "stn"))
    a = p.parse_args()
    sides = [("stn", lambda s: ours(a.stn, a.epochs, s, a.data)),
             ("torch", lambda s: theirs(a.python, a.epochs, s, a.data))]
    finals = {}
    for name, fn in sides:
        if a.only and a.only != name:
            continue
        for s in seeds(a.seeds):
            accs = fn(s)
            finals.setdefault(name, []).append(accs[-1])
            print(json.dumps({"side": name, "seed": s, "epochs": a.epochs,
                              "test_accuracy": [round(x, 2) for x in accs]}), flush=True)
    print(f"test accuracy after epoch {a.epochs}:", file=sys.stderr)
    for name, v in finals.items():
        print(f"  {name:5} mean {statistics.mean(v):.2f}%  min {min(v):.2f}%  max {max(v):.2f}%  "
              f"({len(v)} seeds: {', '.join(f'{x:.2f}' for x in v)})", file=sys.stderr)


if __name__ == "__main__":
    main()
