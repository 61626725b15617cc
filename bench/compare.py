#!/usr/bin/env python3
"""Runs `stn bench` and its PyTorch peers side by side, for several rounds on the same machine,
rotating which of them runs first in each round, and prints medians and the ratio against the
faster PyTorch loop.

    python3 bench/compare.py train            # training steps, batch 64
    python3 bench/compare.py eval             # evaluation of the 10000 test images
    python3 bench/compare.py ops              # affine_grid + grid_sample fwd+bwd
    python3 bench/compare.py all --rounds 5 --markdown
    python3 bench/compare.py train --no-stn   # the PyTorch peers only
    python3 bench/compare.py train --net paper-cnn --batch-size 256 --batches 40   # the paper's CNN

Peers: `bench/torch_bench.py` (PyTorch's fastest eager loop for the recipe; see bench/PEER.md)
for train, eval and ops, and for train also `bench/torch_reference.py`'s own loop (the seed
tutorial's, whole script, `--max-batches`; its time includes its first steps, it has no
warm-up). The ratio is against the faster of the two PyTorch loops (per benchmark, by median),
and each row says which one that was.

Threads: every side gets the same `--threads N` (default: the number of physical cores; 0 lets
each side choose): rayon's pool size for `stn bench`, torch.set_num_threads for the peers. Each
side reports the thread count it really used, printed per row.

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


def physical_cores():
    """Distinct (physical id, core id) pairs in /proc/cpuinfo: PyTorch's default thread count."""
    try:
        cores, phys = set(), None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    cores.add((phys, line.split(":", 1)[1].strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def reference_result(lines, batches):
    """torch_reference.py's summary line as a bench result."""
    s = [x for x in lines if x.get("summary")][-1]
    return {"name": "train", "images_per_second": s["train_img_per_s"], "images": batches * 64,
            "peak_rss_bytes": None, "threads": s.get("threads"),
            "loop": "torch_reference.py (random-permutation gathers, NCHW, no warm-up)"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "eval", "ops", "all"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--threads", type=int, default=physical_cores(),
                   help="threads for every side (default: physical cores; 0: each side's default)")
    p.add_argument("--python", default="/tmp/torchref/bin/python")
    p.add_argument("--stn", default=os.path.join(ROOT, "target", "release", "stn"))
    p.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    p.add_argument("--no-reference", action="store_true", help="train: skip torch_reference.py")
    p.add_argument("--net", choices=["tutorial", "paper-cnn", "paper-st-cnn"], default="tutorial",
                   help="train: the network (the paper's use --batch-size 256; no torch_reference peer)")
    p.add_argument("--batch-size", type=int, default=0, help="train/eval batch size (0: each side's default)")
    p.add_argument("--no-stn", action="store_true", help="time the PyTorch peers only")
    p.add_argument("--markdown", action="store_true", help="print a table for BENCHMARKS.md")
    a = p.parse_args()
    whats = ["train", "eval", "ops"] if a.what == "all" else [a.what]
    threads = ["--threads", str(a.threads)] if a.threads else []
    rows = []
    for what in whats:
        sides = []
        extra_args = []
        if what == "train" and a.net != "tutorial":
            extra_args += ["--net", a.net]
        if a.batch_size:
            extra_args += ["--batch-size", str(a.batch_size)]
        if not a.no_stn:
            sides.append(("stn", [a.stn, "bench", what, "--json", "--batches", str(a.batches)]
                          + threads + extra_args, run))
        sides.append(("torch_bench", [a.python, "bench/torch_bench.py", what, "--data", a.data,
                                      "--batches", str(a.batches)] + threads + extra_args, run))
        if what == "train" and not a.no_reference and not extra_args:
            sides.append(("torch_reference", [a.python, "bench/torch_reference.py", "--data", a.data,
                                              "--epochs", "1", "--max-batches", str(a.batches)] + threads,
                          lambda cmd: [reference_result(run(cmd), a.batches)]))
        results = {name: {} for name, _, _ in sides}
        for r in range(a.rounds):
            k = r % len(sides)
            for name, cmd, runner in sides[k:] + sides[:k]:  # a different side first each round
                for res in runner(cmd):
                    results[name].setdefault(res["name"], []).append(res)
                    extra = " ".join(f"{key} {res[key]}" for key in ("threads", "kernel_path", "cpu_capability")
                                     if res.get(key) is not None)
                    print(f"round {r + 1} {name:15} {res['name']}: {res['images_per_second']:.0f} images/s  {extra}",
                          file=sys.stderr, flush=True)
        keys = list(results["stn"]) if not a.no_stn else list(results["torch_bench"])
        for key in keys:
            # Our fused op is timed against PyTorch's two ops doing the same computation.
            peer_key = key.replace("ops fused", "ops")
            peers = []
            for name in ("torch_bench", "torch_reference"):
                if name in results and peer_key in results[name]:
                    rs = results[name][peer_key]
                    peers.append((statistics.median(x["images_per_second"] for x in rs), name, rs))
            t, tname, trs = max(peers, key=lambda x: x[0])
            others = ", ".join(f"{n} {v:.0f}/s" for v, n, _ in peers if n != tname)
            trss = max(x["peak_rss_bytes"] or 0 for x in trs) / 1e6
            tthreads = trs[-1].get("threads")
            tcap = trs[-1].get("cpu_capability") or next(
                (x[-1].get("cpu_capability") for _, n, x in peers if x[-1].get("cpu_capability")), None)
            if a.no_stn:
                rows.append((key, None, t, None, None, trss, None, None, tthreads, tcap, tname, others))
                continue
            ours = results["stn"][key]
            o = statistics.median(x["images_per_second"] for x in ours)
            orss = max(x["peak_rss_bytes"] or 0 for x in ours) / 1e6
            rows.append((key, o, t, o / t, orss, trss, ours[-1].get("threads"), ours[-1].get("kernel_path"),
                         tthreads, tcap, tname, others))
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {physical_cores()} physical cores; "
          f"threads asked: {a.threads or 'each side default'}; {a.rounds} rounds, medians, "
          f"order rotated each round")
    if a.markdown:
        print("| benchmark | stn images/s | PyTorch images/s | ratio | stn threads, kernels | PyTorch loop, threads, CPU capability | stn peak RSS | PyTorch peak RSS |")
        print("|---|---|---|---|---|---|---|---|")
        for k, o, t, r, orss, trss, oth, kp, tth, cap, tname, others in rows:
            ostr = f"{o:,.0f}" if o is not None else "-"
            rstr = f"{r:.2f}x" if r is not None else "-"
            orss_s = f"{orss:.0f} MB" if orss is not None else "-"
            print(f"| {k} | {ostr} | {t:,.0f} | {rstr} | {oth}, {kp or '-'} | {tname}, {tth}, {cap}"
                  f"{' (other: ' + others + ')' if others else ''} | {orss_s} | {trss:.0f} MB |")
    else:
        for k, o, t, r, orss, trss, oth, kp, tth, cap, tname, others in rows:
            if o is None:
                print(f"{k:18} torch {t:9.0f}/s  [{tname}, {tth} threads, {cap}]"
                      f"{'  other: ' + others if others else ''}  RSS {trss:.0f} MB")
            else:
                print(f"{k:18} stn {o:9.0f}/s  torch {t:9.0f}/s  ratio {r:5.2f}x  "
                      f"[stn {oth} threads, kernels {kp or 'n/a'}; torch: {tname}, {tth} threads, {cap}"
                      f"{'; other: ' + others if others else ''}]  RSS {orss:.0f} MB vs {trss:.0f} MB")


if __name__ == "__main__":
    main()
