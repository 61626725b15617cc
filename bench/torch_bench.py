#!/usr/bin/env python3
"""PyTorch side of `bench/compare.py`: times the same work as `stn bench train|eval|ops`, the
same way (warm-up, then a timed loop), and prints one JSON object per measurement with
images_per_second and peak_rss_bytes, like `stn bench --json`, plus the thread count PyTorch
used, its CPU capability (the SIMD level of the kernels it dispatched to) and which loop ran.

The peer is meant to be PyTorch's fastest *eager* loop for the recipe (see bench/PEER.md for the
measurements behind the choices):

train: the tutorial's training step (train mode, dropout on; forward, NLL loss, backward,
       SGD lr 0.01) on batches of 64 MNIST images; --net paper-cnn / paper-st-cnn trains the
       paper's networks instead (use --batch-size 256, the paper's). The data are normalized once, before timing;
       a batch is a contiguous slice of that tensor (no copy); gradients are set to None
       (zero_grad's default); the model and each batch are in channels_last memory format,
       which makes oneDNN's convolutions about 1.5x faster on CPU (--layout contiguous gives
       the plain NCHW loop that this script used before, the loop torch_reference.py runs).
eval:  the tutorial network in eval mode over the 10000 test images, batches of 1000, under
       torch.inference_mode(), channels_last as above.
ops:   affine_grid + bilinear grid_sample forward and backward (gradients to the input and
       theta, via torch.autograd.grad with a preallocated upstream gradient of ones) on
       [64,1,28,28] and [32,3,64,64].

Setup (once):  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch
Run:           /tmp/torchref/bin/python bench/torch_bench.py train --data data/mnist --threads 2
"""
import argparse, json, os, resource, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import Net, load  # noqa: E402


class PaperCNN(nn.Module):
    """The paper's CNN as `stn bench train --net paper-cnn` builds it (stn's table1 `cpu`
    budget): conv 9x9 -> max-pool 2 -> ReLU -> conv 7x7 -> max-pool 2 -> ReLU -> linear, each
    convolution zero-padded to keep its input size; no dropout."""

    def __init__(self, filters=(16, 32), side=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, filters[0], 9, padding=4)
        self.conv2 = nn.Conv2d(filters[0], filters[1], 7, padding=3)
        self.fc1 = nn.Linear(filters[1] * (side // 4) ** 2, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return F.log_softmax(self.fc1(x.flatten(1)), dim=1)


class PaperSTCNN(nn.Module):
    """The paper's affine ST-CNN as `--net paper-st-cnn` builds it: localization conv 5x5 (20)
    -> pool -> ReLU -> conv 5x5 (20) -> pool -> ReLU -> linear 20 -> ReLU -> linear 6 (zero
    weights, identity bias), affine grid + bilinear sampling, then a PaperCNN of 12 and 23
    filters (42,897 parameters in all, the CNN's 42,122 give or take 2%)."""

    def __init__(self):
        super().__init__()
        self.cnn = PaperCNN((12, 23))
        self.localization = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(True),
            nn.Conv2d(20, 20, 5), nn.MaxPool2d(2), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(320, 20), nn.ReLU(True), nn.Linear(20, 6))
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def forward(self, x):
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return self.cnn(F.grid_sample(x, grid, align_corners=False))


NETS = {"tutorial": Net, "paper-cnn": PaperCNN, "paper-st-cnn": PaperSTCNN}


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def report(name, images, seconds, loop):
    print(json.dumps({"name": name, "images_per_second": images / seconds, "seconds": seconds,
                      "images": images, "peak_rss_bytes": peak_rss(),
                      "threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "torch_version": torch.__version__, "loop": loop}), flush=True)


def layout(a):
    return torch.channels_last if a.layout == "channels_last" else torch.contiguous_format


def bench_train(a):
    torch.manual_seed(1)
    xtr, ytr = load(a.data, "train")  # normalized float32, once, outside the timed loop
    fmt = layout(a)
    model = NETS[a.net]().to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    parameters = sum(p.numel() for p in model.parameters())
    bs = a.batch_size or 64
    n = len(xtr)

    def steps(start, count):
        for b in range(start, start + count):
            i = (b * bs) % (n - bs)
            x = xtr[i:i + bs]
            if fmt is torch.channels_last:
                x = x.contiguous(memory_format=fmt)
            opt.zero_grad(set_to_none=True)
            loss = F.nll_loss(model(x), ytr[i:i + bs])
            loss.backward()
            opt.step()

    steps(0, a.warmup)
    t = time.perf_counter()
    steps(a.warmup, a.batches)
    name = "train" if a.net == "tutorial" else f"train {a.net}"
    report(name, a.batches * bs, time.perf_counter() - t,
           f"torch_bench eager, {a.layout}, contiguous batches, SGD(lr=0.01), grads set to None, "
           f"{parameters} parameters")


def bench_eval(a):
    torch.manual_seed(1)
    xte, yte = load(a.data, "test")
    fmt = layout(a)
    model = Net().to(memory_format=fmt)
    model.eval()
    bs = a.batch_size or 1000
    with torch.inference_mode():
        model(xte[:bs].contiguous(memory_format=fmt))
        t = time.perf_counter()
        out = torch.cat([model(xte[i:i + bs].contiguous(memory_format=fmt))
                         for i in range(0, len(xte), bs)])
        F.nll_loss(out, yte).item()
        (out.argmax(1) == yte).sum().item()
    report("eval", len(xte), time.perf_counter() - t, f"torch_bench inference_mode, {a.layout}")


def bench_ops(a):
    for n, c, h, w in [(64, 1, 28, 28), (32, 3, 64, 64)]:
        x = torch.randn(n, c, h, w).requires_grad_(True)
        theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 1.1, -0.05]]]).expand(n, 2, 3).clone().requires_grad_(True)
        ones = torch.ones(n, c, h, w)

        def step():
            grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
            out = F.grid_sample(x, grid, align_corners=False)
            gx, gt = torch.autograd.grad(out, (x, theta), ones)
            (gx.sum() + gt.sum()).item()

        for _ in range(max(1, a.batches // 10)):
            step()
        t = time.perf_counter()
        for _ in range(a.batches):
            step()
        report(f"ops {n}x{c}x{h}x{w}", n * a.batches, time.perf_counter() - t,
               "torch_bench affine_grid + grid_sample, autograd.grad")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "eval", "ops"])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "mnist"))
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--net", choices=sorted(NETS), default="tutorial",
                   help="train: the network (the tutorial's, or the paper's CNN / affine ST-CNN)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: torch's default")
    p.add_argument("--layout", choices=["channels_last", "contiguous"], default="channels_last",
                   help="memory format of the model and batches (train, eval)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    {"train": bench_train, "eval": bench_eval, "ops": bench_ops}[a.what](a)


if __name__ == "__main__":
    main()
