#!/usr/bin/env python3
"""Reference figures of Debian's Fashion-MNIST (dataset-fashion-mnist), read with Python's own gzip
and struct modules, independently of the library's IDX reader. Tests/ScoreSDETests/IDXTests.swift
asserts these numbers (counts, per-class counts, first labels, pixel range and exact pixel sums)."""
import gzip, struct, sys

folder = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
for split in ["train", "t10k"]:
    with gzip.open("%s/%s-images-idx3-ubyte.gz" % (folder, split)) as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    pixels = raw[16:]
    assert magic == 0x803 and len(pixels) == n * rows * cols
    with gzip.open("%s/%s-labels-idx1-ubyte.gz" % (folder, split)) as f:
        raw = f.read()
    magic, m = struct.unpack(">II", raw[:8])
    labels = raw[8:]
    assert magic == 0x801 and m == n == len(labels)
    total = sum(pixels)
    print("%s: %d images %dx%d, classes %s, first labels %s, pixels %d...%d, sum %d, mean %.14g, first image sum %d"
          % (split, n, rows, cols, [labels.count(k) for k in range(10)], list(labels[:10]),
             min(pixels), max(pixels), total, total / len(pixels), sum(pixels[:rows * cols])))
