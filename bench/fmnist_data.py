"""Fashion-MNIST as an ANN data set: Debian's dataset-fashion-mnist (IDX, 60000 train + 10000
test images of 28 x 28 pixels) to fmnist_base.fvecs (the train images, 784 floats 0..255 each),
fmnist_query.fvecs (the test images) and fmnist_groundtruth.ivecs (the exact L2 top-100 of each
query among the base, computed here), plus each image's class (0..9) in fmnist_{base,query}_labels
.ivecs for filtered search.

    python3 bench/fmnist_data.py OUT_DIR [--src /usr/share/datasets/fashion-mnist]

Needs numpy. Exact search in float64 blocks; ties (equal distances) rank the smaller id first."""
import argparse
import gzip
import os
import sys

import numpy as np


def idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    dims = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    return data.reshape(shape)


def write_vecs(path: str, x: np.ndarray, dtype) -> None:
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=dtype)
    rows[:, 1:] = x
    rows.view(np.int32)[:, 0] = d
    tmp = path + ".tmp"
    rows.tofile(tmp)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = idx(f"{a.src}/train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32)
    query = idx(f"{a.src}/t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32)
    bl = idx(f"{a.src}/train-labels-idx1-ubyte.gz").astype(np.int32).reshape(-1, 1)
    ql = idx(f"{a.src}/t10k-labels-idx1-ubyte.gz").astype(np.int32).reshape(-1, 1)
    p = os.path.join(a.out, "fmnist")
    write_vecs(p + "_base.fvecs", base, np.float32)
    write_vecs(p + "_query.fvecs", query, np.float32)
    write_vecs(p + "_base_labels.ivecs", bl, np.int32)
    write_vecs(p + "_query_labels.ivecs", ql, np.int32)
    b64 = base.astype(np.float64)
    bn = (b64 * b64).sum(axis=1)
    gt = np.empty((len(query), a.k), dtype=np.int32)
    for s in range(0, len(query), 500):
        q = query[s:s + 500].astype(np.float64)
        d = (q * q).sum(axis=1)[:, None] - 2.0 * q @ b64.T + bn[None, :]
        part = np.argpartition(d, a.k, axis=1)[:, :a.k]
        for i in range(len(q)):
            c = part[i]
            order = np.lexsort((c, d[i, c]))
            gt[s + i] = c[order]
    write_vecs(p + "_groundtruth.ivecs", gt, np.int32)
    print(f"fmnist: {len(base)} x {base.shape[1]} base, {len(query)} queries, top-{a.k} exact "
          f"ground truth in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
