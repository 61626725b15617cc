#!/usr/bin/env python3
"""PyTorch side of `bench/compare.py`: times the same work as `stn bench train|eval|ops`, the
same way (warm-up, then a timed loop), and prints one JSON object per measurement with
images_per_second and peak_rss_bytes, like `stn bench --json`.

train: the tutorial's training step (forward, NLL loss, backward, SGD lr 0.01) on batches of
       64 MNIST images, as ../bench/torch_reference.py does it (a tight tensor loop).
eval:  the tutorial network in eval mode over the 10000 test images, batches of 1000.
ops:   affine_grid + bilinear grid_sample forward and backward (gradients to the input and
       theta) on [64,1,28,28] and [32,3,64,64].

Setup (once):  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch
Run:           /tmp/torchref/bin/python bench/torch_bench.py train --data data/mnist
"""
import argparse, json, os, resource, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import Net, load  # noqa: E402


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def report(name, images, seconds):
    print(json.dumps({"name": name, "images_per_second": images / seconds, "seconds": seconds,
                      "images": images, "peak_rss_bytes": peak_rss(),
                      "threads": torch.get_num_threads()}), flush=True)


def bench_train(a):
    torch.manual_seed(1)
    xtr, ytr = load(a.data, "train")
    model = Net()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    bs = a.batch_size or 64
    n = len(xtr)

    def steps(start, count):
        for b in range(start, start + count):
            i = (b * bs) % (n - bs)
            opt.zero_grad()
            loss = F.nll_loss(model(xtr[i:i + bs]), ytr[i:i + bs])
            loss.backward()
            opt.step()

    steps(0, a.warmup)
    t = time.perf_counter()
    steps(a.warmup, a.batches)
    report("train", a.batches * bs, time.perf_counter() - t)


def bench_eval(a):
    torch.manual_seed(1)
    xte, yte = load(a.data, "test")
    model = Net()
    model.eval()
    bs = a.batch_size or 1000
    with torch.no_grad():
        model(xte[:bs])
        t = time.perf_counter()
        out = torch.cat([model(xte[i:i + bs]) for i in range(0, len(xte), bs)])
        F.nll_loss(out, yte).item()
        (out.argmax(1) == yte).sum().item()
    report("eval", len(xte), time.perf_counter() - t)


def bench_ops(a):
    for n, c, h, w in [(64, 1, 28, 28), (32, 3, 64, 64)]:
        x0 = torch.randn(n, c, h, w)
        theta0 = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 1.1, -0.05]]])

        def step():
            x = x0.clone().requires_grad_(True)
            theta = theta0.expand(n, 2, 3).clone().requires_grad_(True)
            grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
            out = F.grid_sample(x, grid, align_corners=False)
            out.sum().backward()
            (x.grad.sum() + theta.grad.sum()).item()

        for _ in range(max(1, a.batches // 10)):
            step()
        t = time.perf_counter()
        for _ in range(a.batches):
            step()
        report(f"ops {n}x{c}x{h}x{w}", n * a.batches, time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "eval", "ops"])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "mnist"))
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="0: torch default")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    {"train": bench_train, "eval": bench_eval, "ops": bench_ops}[a.what](a)


if __name__ == "__main__":
    main()
