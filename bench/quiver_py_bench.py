#!/usr/bin/env python3
"""Quiver through its Python client, in the same loop as milvus_lite_bench.py (B queries per
call, one call at a time), so that the peer comparison also has a like-for-like row.

    quiver_py_bench.py --target HOST:PORT --collection NAME --queries Q.fvecs
                       --groundtruth GT.ivecs --nprobe P[,P...] --k K --batch B --seconds S
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import quiver_client
from vecs import read_vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--groundtruth", required=True)
    ap.add_argument("--nprobe", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    q = read_vecs(a.queries, np.float32)
    gt = read_vecs(a.groundtruth, np.int32)
    with quiver_client.Client(a.target) as c:
        for nprobe in [int(x) for x in a.nprobe.split(",")]:
            c.search(a.collection, q[: a.batch], k=a.k, nprobe=nprobe)
            lat, hits, total, calls, start = [], 0, 0, 0, 0
            t_end = time.time() + a.seconds
            t_begin = time.time()
            while time.time() < t_end:
                idx = [(start + i) % len(q) for i in range(a.batch)]
                start += a.batch
                t = time.time()
                ids, _ = c.search(a.collection, q[idx], k=a.k, nprobe=nprobe)
                lat.append((time.time() - t) * 1e3)
                calls += 1
                for row, qi in zip(ids, idx):
                    hits += len(set(row.tolist()) & set(gt[qi, : a.k].tolist()))
                    total += a.k
            secs = time.time() - t_begin
            lat.sort()
            print(json.dumps({
                "peer": "quiver-python", "nprobe": nprobe, "k": a.k, "batch": a.batch,
                "concurrency": 1, "seconds": round(secs, 2),
                "queries_per_s": round(calls * a.batch / secs, 1),
                "calls_per_s": round(calls / secs, 1),
                "latency_ms": {"p50": lat[len(lat) // 2],
                               "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))]},
                "recall_at_k": round(hits / total, 4)}), flush=True)


if __name__ == "__main__":
    main()
