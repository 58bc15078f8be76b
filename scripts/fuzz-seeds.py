#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/Corpus/<target>/): small valid files of every
kind each parser accepts. Plain Python (struct, zlib, gzip, json): no numpy needed. The checkpoint seeds
come from `scoresde train` (see scripts/fuzz.sh), not from here."""
import gzip, json, os, struct, sys, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "Corpus")

def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def npy(descr, shape, raw, fortran=False, version=1):
    shape_text = "(%s)" % (", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_text)
    pre = 10 if version == 1 else 12
    pad = 64 - (pre + len(text) + 1) % 64
    header = text + " " * pad + "\n"
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode("latin1") + raw

# .npy: every dtype, versions 1 and 2, empty and 1-D arrays, Fortran order of a vector.
codes = {"<f8": "d", "<f4": "f", "<i8": "q", "<i4": "i", "<i2": "h", "<u8": "Q", "<u4": "I", "<u2": "H", "|u1": "B", "|i1": "b", "|b1": "?"}
for descr, code in codes.items():
    vals = [0, 1, 2, 3, 1, 0] if code != "?" else [True, False, True, True, False, False]
    put("FuzzNpy", "shape2x3" + descr.replace("<", "_").replace("|", "_") + ".npy", npy(descr, [2, 3], struct.pack("<6" + code, *vals)))
put("FuzzNpy", "v2.npy", npy("<f8", [3], struct.pack("<3d", 1.5, -2, 1e-300), version=2))
put("FuzzNpy", "empty.npy", npy("<f8", [0, 4], b""))
put("FuzzNpy", "fortran-vector.npy", npy("<f4", [4], struct.pack("<4f", 1, 2, 3, 4), fortran=True))
put("FuzzNpy", "images.npy", npy("|u1", [1, 1, 2, 2], bytes([0, 64, 128, 255])))

# safetensors: each dtype, metadata, an empty file.
def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata: header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw); offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)
put("FuzzSafetensors", "f64.safetensors", safetensors([("w", "F64", [2, 2], struct.pack("<4d", 1, -2, 0.5, 3))], {"format": "x"}))
put("FuzzSafetensors", "f32.safetensors", safetensors([("a", "F32", [3], struct.pack("<3f", 1, 2, 3)), ("b", "F32", [], struct.pack("<f", 7))]))
put("FuzzSafetensors", "f16-bf16.safetensors", safetensors([("h", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)), ("b", "BF16", [2], struct.pack("<2H", 0x3F80, 0x4000))]))
put("FuzzSafetensors", "empty.safetensors", safetensors([]))

# PNG: grey, RGB, palette (+ transparency), grey+alpha, RGBA, 16-bit, 1-bit, Adam7 interlaced.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
def png(width, height, depth, colour, rows, interlace=False, extra=b""):
    """rows: list of lists of samples (one list per pixel row)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    def pack(row):
        if depth >= 8:
            return b"".join(struct.pack(">H" if depth == 16 else ">B", v) for v in row)
        bits = "".join(format(v, "0%db" % depth) for v in row)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    raw = b""
    if not interlace:
        for r in rows: raw += b"\x00" + pack(r)
    else:
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            for y in range(y0, height, dy):
                xs = list(range(x0, width, dx))
                if xs: raw += b"\x00" + pack([v for x in xs for v in rows[y][x * channels:(x + 1) * channels]])
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 1 if interlace else 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
grey = [[(x * 40 + y * 20) % 256 for x in range(5)] for y in range(3)]
rgb = [[(x * 50 + c * 80 + y) % 256 for x in range(4) for c in range(3)] for y in range(3)]
put("FuzzPNG", "grey8.png", png(5, 3, 8, 0, grey))
put("FuzzPNG", "rgb8.png", png(4, 3, 8, 2, rgb))
put("FuzzPNG", "grey1.png", png(9, 2, 1, 0, [[x % 2 for x in range(9)], [1 - x % 2 for x in range(9)]]))
put("FuzzPNG", "grey16.png", png(3, 2, 16, 0, [[0, 30000, 65535], [1, 2, 3]]))
put("FuzzPNG", "rgba16.png", png(2, 2, 16, 6, [[65535, 0, 0, 65535, 0, 65535, 0, 32768], [0, 0, 65535, 0, 1000, 2000, 3000, 65535]]))
put("FuzzPNG", "grey-alpha.png", png(2, 1, 8, 4, [[100, 255, 200, 0]]))
palette = chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])) + chunk(b"tRNS", bytes([255, 128]))
put("FuzzPNG", "palette4.png", png(4, 2, 4, 3, [[0, 1, 2, 3], [3, 2, 1, 0]], extra=palette))
put("FuzzPNG", "interlaced.png", png(9, 9, 8, 2, [[(x * 28 + y * 3 + c * 90) % 256 for x in range(9) for c in range(3)] for y in range(9)], interlace=True))

# Mixture JSON (gmm:PATH.json).
put("FuzzMixture", "isotropic.json", json.dumps({"weights": [1, 2], "means": [[0, 0], [3, 1]], "stds": [0.5, 1]}))
put("FuzzMixture", "diagonal.json", json.dumps({"means": [[0, 1, 2]], "stds": [[0.1, 0.2, 0.3]]}))
put("FuzzMixture", "three.json", '{"means": [[-1e3], [0], [2.5e-3]], "stds": [1, 2, 3], "weights": [0.2, 0.3, 0.5]}')

# Mixing JSON (colorize --mixing).
put("FuzzMixing", "reference.json", "[[5.7735014e-01, -8.1649649e-01, 4.7008697e-08], [5.7735026e-01, 4.0824834e-01, 7.0710671e-01], [5.7735026e-01, 4.0824822e-01, -7.0710683e-01]]")
put("FuzzMixing", "identity.json", "[[1, 0, 0], [0, 1, 0], [0, 0, 1]]")
put("FuzzMixing", "rotation2.json", "[[0.6, -0.8], [0.8, 0.6]]")

# reconstruct: 2-byte length of A's .npy, A's .npy, y's .npy.
def pair(a, y):
    return struct.pack("<H", len(a)) + a + y
put("FuzzMeasurement", "sum.bin", pair(npy("<f8", [1, 2], struct.pack("<2d", 1, 1)), npy("<f8", [1], struct.pack("<d", 0.5))))
put("FuzzMeasurement", "blocks.bin", pair(npy("<f8", [2, 4], struct.pack("<8d", .5, .5, 0, 0, 0, 0, .5, .5)), npy("<f8", [3, 2], struct.pack("<6d", 1, 2, 3, 4, 5, 6))))
put("FuzzMeasurement", "vector.bin", pair(npy("<f4", [3], struct.pack("<3f", 1, 2, 3)), npy("<i4", [1], struct.pack("<i", 7))))

# IDX (MNIST's format): every type code, plain and gzipped (Python's gzip, mtime 0), an empty array,
# a tiny Fashion-MNIST-shaped pair of images and labels.
def idx(code, dims, raw):
    return bytes([0, 0, code, len(dims)]) + struct.pack(">%dI" % len(dims), *dims) + raw
idx_codes = {0x08: ">6B", 0x09: ">6b", 0x0B: ">6h", 0x0C: ">6i", 0x0D: ">6f", 0x0E: ">6d"}
for code, fmt in idx_codes.items():
    vals = [0, 1, 2, 3, 1, 0] if code == 0x08 else [0, -1, 2, -3, 1, 0]
    put("FuzzIDX", "shape2x3-%02x.idx" % code, idx(code, [2, 3], struct.pack(fmt, *vals)))
put("FuzzIDX", "shape2x3-0d.idx.gz", gzip.compress(idx(0x0D, [2, 3], struct.pack(">6f", 0.5, -1, 2, 1e-3, 3, 0)), mtime=0))
put("FuzzIDX", "empty-0x28x28.idx", idx(0x08, [0, 28, 28], b""))
put("FuzzIDX", "images-2x28x28.idx.gz", gzip.compress(idx(0x08, [2, 28, 28], bytes((i * 7) % 256 for i in range(2 * 784))), mtime=0))
put("FuzzIDX", "labels-3.idx.gz", gzip.compress(idx(0x08, [3], bytes([9, 0, 3])), mtime=0))
