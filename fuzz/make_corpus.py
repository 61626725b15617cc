#!/usr/bin/env python3
"""Writes a seed corpus of small, valid IDX files (raw and gzipped) to fuzz/corpus/idx/.

Usage (from anywhere): python3 fuzz/make_corpus.py
"""
import gzip
import math
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "idx")


def idx(dims, data):
    """An IDX file of unsigned bytes: 00 00 08 <ndims>, big-endian u32 sizes, then the values."""
    assert len(data) == math.prod(dims)
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "labels_0": idx([0], []),
        "labels_1": idx([1], [7]),
        "labels_10": idx([10], list(range(10))),
        "images_0x28x28": idx([0, 28, 28], []),
        "images_1x2x3": idx([1, 2, 3], [0, 1, 2, 3, 4, 5]),
        "images_2x4x4": idx([2, 4, 4], [(i * 37) % 256 for i in range(32)]),
        "images_1x28x28": idx([1, 28, 28], [(i * 7) % 256 for i in range(784)]),
    }
    for name, raw in list(seeds.items()):
        seeds[name + ".gz"] = gzip.compress(raw, mtime=0)
    # Two concatenated gzip members (maybe_gunzip uses a multi-member decoder).
    raw = seeds["labels_10"]
    seeds["labels_10.multi.gz"] = gzip.compress(raw[:9], mtime=0) + gzip.compress(raw[9:], mtime=0)
    for name, content in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(content)
    print(f"wrote {len(seeds)} files to {OUT}")


if __name__ == "__main__":
    main()
