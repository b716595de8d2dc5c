#!/usr/bin/env python3
"""Milvus Lite as the peer server for bench/compare.sh: IVF_FLAT with the same nlist and nprobe.

    milvus_lite_bench.py --base B.fvecs --queries Q.fvecs --groundtruth GT.ivecs --nlist N
                         --nprobe P[,P...] --k K --batch B --seconds S --db PATH

Loads the base vectors (ids = row numbers), builds IVF_FLAT (L2), then for each nprobe runs
searches of B queries per call, one call at a time, for S seconds, and prints one JSON line per
nprobe: queries/s, calls/s, latency p50/p99 (ms) and recall@k against the ground truth.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from pymilvus import DataType, MilvusClient
from vecs import read_vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--groundtruth", required=True)
    ap.add_argument("--nlist", type=int, required=True)
    ap.add_argument("--nprobe", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--db", required=True)
    a = ap.parse_args()
    base = read_vecs(a.base, np.float32)
    q = read_vecs(a.queries, np.float32)
    gt = read_vecs(a.groundtruth, np.int32)
    c = MilvusClient(a.db)
    if c.has_collection("bench"):
        c.drop_collection("bench")
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=base.shape[1])
    c.create_collection("bench", schema=schema)
    t0 = time.time()
    for off in range(0, len(base), 5000):
        part = base[off:off + 5000]
        c.insert("bench", [{"id": off + i, "v": part[i]} for i in range(len(part))])
    # Sealed segments with the index built on them (a growing segment is searched brute force).
    c.flush("bench")
    ip = c.prepare_index_params()
    ip.add_index(field_name="v", index_type="IVF_FLAT", metric_type="L2",
                 params={"nlist": a.nlist})
    c.create_index("bench", ip)
    c.load_collection("bench")
    load_s = time.time() - t0
    for nprobe in [int(x) for x in a.nprobe.split(",")]:
        params = {"metric_type": "L2", "params": {"nprobe": nprobe}}
        # Warm-up, then a fixed duration.
        c.search("bench", data=q[: a.batch].tolist(), limit=a.k, search_params=params,
                 output_fields=[])
        lat, hits, total, calls, start = [], 0, 0, 0, 0
        t_end = time.time() + a.seconds
        t_begin = time.time()
        while time.time() < t_end:
            idx = [(start + i) % len(q) for i in range(a.batch)]
            start += a.batch
            t = time.time()
            res = c.search("bench", data=q[idx].tolist(), limit=a.k, search_params=params,
                           output_fields=[])
            lat.append((time.time() - t) * 1e3)
            calls += 1
            for qi, hitlist in zip(idx, res):
                got = {h["id"] for h in hitlist}
                hits += len(got & set(gt[qi, : a.k].tolist()))
                total += a.k
        secs = time.time() - t_begin
        lat.sort()
        print(json.dumps({
            "peer": "milvus-lite", "index": f"IVF_FLAT nlist={a.nlist}", "nprobe": nprobe,
            "k": a.k, "batch": a.batch, "concurrency": 1, "seconds": round(secs, 2),
            "queries_per_s": round(calls * a.batch / secs, 1), "calls_per_s": round(calls / secs, 1),
            "latency_ms": {"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1,
                                                                     int(len(lat) * 0.99))]},
            "recall_at_k": round(hits / total, 4), "load_s": round(load_s, 2)}), flush=True)
    c.close()


if __name__ == "__main__":
    main()
