#!/usr/bin/env python3
"""Which PyTorch eager training loop is fastest for the tutorial recipe (SGD lr 0.01, batch 64,
train mode with dropout)? Times several loop variants in one process, interleaved in short
chunks and rotated so that none always runs first, for each thread count asked for, and prints
the median images/s (wall clock) and CPU-seconds per 1000 images of each, plus one JSON line per
variant. Used for bench/PEER.md.

    /tmp/torchref/bin/python bench/peer_loops.py --threads 1,2 --rounds 15 --chunk 20

Variants (all the same math; each trains its own copy of the same initial network):
  bench_old     the train loop torch_bench.py had: contiguous slices xtr[i:i+64], opt.zero_grad()
  reference     torch_reference.py's loop: a random permutation, xtr[idx] gathers each batch
  zero_fill     bench_old with opt.zero_grad(set_to_none=False) (gradients zeroed in place)
  channels_last bench_old with the model and the batch in channels_last memory format
  foreach_sgd   bench_old with SGD(foreach=True)
  fused_sgd     bench_old with SGD(fused=True), where this PyTorch has a fused CPU SGD
  no_mkldnn     bench_old with torch.backends.mkldnn disabled (PyTorch's own conv kernels)
  cl_foreach    channels_last and SGD(foreach=True)
  cl_gather     channels_last with torch_reference.py's random-permutation gathers
"""
import argparse, copy, json, os, statistics, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import Net, load  # noqa: E402


class Loop:
    def __init__(self, name, init, xtr, ytr, bs, sgd=None, set_to_none=True, gather=False,
                 channels_last=False, mkldnn=True):
        self.name, self.xtr, self.ytr, self.bs = name, xtr, ytr, bs
        self.model = copy.deepcopy(init)
        self.model.train()
        self.channels_last, self.mkldnn, self.set_to_none, self.gather = channels_last, mkldnn, set_to_none, gather
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, **(sgd or {}))
        self.b = 0
        self.perm = torch.randperm(len(xtr))

    def steps(self, count):
        n, bs = len(self.xtr), self.bs
        with torch.backends.mkldnn.flags(enabled=self.mkldnn):
            for _ in range(count):
                if self.gather:
                    i = (self.b * bs) % (n - bs)
                    idx = self.perm[i:i + bs]
                    x, y = self.xtr[idx], self.ytr[idx]
                else:
                    i = (self.b * bs) % (n - bs)
                    x, y = self.xtr[i:i + bs], self.ytr[i:i + bs]
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                self.opt.zero_grad(set_to_none=self.set_to_none)
                loss = F.nll_loss(self.model(x), y)
                loss.backward()
                self.opt.step()
                self.b += 1


def make_loops(init, xtr, ytr, bs, only):
    specs = [("bench_old", {}), ("reference", {"gather": True}),
             ("zero_fill", {"set_to_none": False}), ("channels_last", {"channels_last": True}),
             ("foreach_sgd", {"sgd": {"foreach": True}}), ("fused_sgd", {"sgd": {"fused": True}}),
             ("no_mkldnn", {"mkldnn": False}),
             ("cl_foreach", {"channels_last": True, "sgd": {"foreach": True}}),
             ("cl_gather", {"channels_last": True, "gather": True})]
    loops = []
    for name, kw in specs:
        if only and name not in only:
            continue
        try:
            loop = Loop(name, init, xtr, ytr, bs, **kw)
            loop.steps(1)
        except (RuntimeError, TypeError, ValueError) as e:
            print(f"# {name}: not available ({str(e).splitlines()[0]})", file=sys.stderr)
            continue
        loops.append(loop)
    return loops


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "mnist"))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--chunk", type=int, default=20, help="steps per timed chunk")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--only", default="", help="comma-separated variant names")
    a = p.parse_args()
    only = set(filter(None, a.only.split(",")))
    torch.manual_seed(1)
    xtr, ytr = load(a.data, "train")
    init = Net()
    print(f"# torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr)
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        loops = make_loops(init, xtr, ytr, 64, only)
        for loop in loops:
            loop.steps(a.warmup)
        wall = {l.name: [] for l in loops}
        cpu = {l.name: [] for l in loops}
        for r in range(a.rounds):
            order = loops[r % len(loops):] + loops[:r % len(loops)]
            for loop in order:
                t0, c0 = time.perf_counter(), time.process_time()
                loop.steps(a.chunk)
                t1, c1 = time.perf_counter(), time.process_time()
                wall[loop.name].append(a.chunk * 64 / (t1 - t0))
                cpu[loop.name].append((c1 - c0) / (a.chunk * 64) * 1000)
        base = statistics.median(wall[loops[0].name])
        for loop in loops:
            w, c = statistics.median(wall[loop.name]), statistics.median(cpu[loop.name])
            print(f"threads {threads}  {loop.name:14} {w:8.0f} images/s (median of {a.rounds}, "
                  f"{w / base:5.2f}x {loops[0].name})  {c:6.3f} CPU-s per 1000 images", file=sys.stderr)
            print(json.dumps({"threads": torch.get_num_threads(), "variant": loop.name,
                              "images_per_second": w, "cpu_s_per_1000_images": c,
                              "all_images_per_second": [round(v, 1) for v in wall[loop.name]],
                              "cpu_capability": torch.backends.cpu.get_cpu_capability()}), flush=True)


if __name__ == "__main__":
    main()
