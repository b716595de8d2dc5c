#!/usr/bin/env python3
"""Writes the tables of a GPU check (scripts/gpu-check.sh run) into its summary.md.

    gpu_summary.py RESULTS.jsonl NOTES.md SUMMARY.md

SUMMARY.md is written anew: the run's notes (NOTES.md), then one table per step from
RESULTS.jsonl. The run calls it after every step, so that a run cut short still leaves the tables
of the steps it finished. Standard library only (the GPU host has no network to install
anything)."""
import json
import sys

def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def f(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


def main(results, notes, summary):
    rows = []
    with open(results) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    try:
        with open(notes) as fh:
            keep = fh.read().rstrip("\n")
    except OSError:
        keep = ""
    parts = [keep, ""]
    rr = [r for r in rows if r.get("step") == "rerank"]
    if rr:
        parts += ["## Rerank: CUDA twin vs CPU twin (`rerank_bench`, median of reps)", "",
                  table(["queries", "candidates", "dim", "k", "features", "MMR λ", "CPU s",
                         "CUDA s (with copies)", "CPU/CUDA", "bit-identical"],
                        [[r["queries"], r["candidates"], r["dim"], r["k"], r["features"],
                          r["mmr_lambda"], f(r["cpu_seconds"], 4), f(r["cuda_seconds"], 4),
                          f(r["cpu_seconds"] / r["cuda_seconds"], 1) if r["cuda_seconds"] else "-",
                          r["identical"]] for r in rr]), ""]
    gs = [r for r in rows if r.get("step") == "gpu_search"]
    if gs:
        parts += ["## Search: Quiver GPU-resident vs FAISS GPU in-process (`gpu_search`, 1 "
                  "calling thread, median of reps)", "",
                  "Bandwidth: bytes of list codes in the probed lists per query × QPS ÷ peak "
                  f"({f(gs[0].get('peak_gbs'))} GB/s); list codes only (no centroids, ids, "
                  "cache reuse).", "",
                  table(["data", "spec", "nprobe", "batch", "queries", "Quiver q/s", "FAISS q/s",
                         "Quiver/FAISS", "recall@10 Quiver", "recall@10 FAISS", "MB/query",
                         "BW Quiver", "BW FAISS"],
                        [[r["data"], r["spec"], r["nprobe"], r["batch"], r["queries"],
                          f(r["quiver_qps"]), f(r["faiss_gpu_qps"]), f(r["ratio"], 3),
                          f(r["recall_quiver"], 4), f(r["recall_faiss"], 4),
                          f(r.get("list_bytes_per_query", 0) / 1e6, 3),
                          f(r.get("bw_frac_quiver"), 3), f(r.get("bw_frac_faiss"), 3)]
                         for r in gs]), ""]
    qd = [r for r in rows if r.get("step") == "quiverd"]
    if qd:
        lat = lambda r, p: f(r.get("latency_ms", {}).get(p), 3)
        parts += ["## quiverd under `quiver bench` (closed loop, nprobe "
                  f"{qd[0].get('nprobe')}, {qd[0].get('spec')}, n = {f(qd[0].get('n'))}; "
                  f"{qd[0].get('serving')})", "",
                  table(["in flight", "batch", "client threads", "queries/s", "calls/s",
                         "p50 ms", "p99 ms", "queries per index search", "recall@10",
                         "errors"],
                        [[r["concurrency"], r["batch"], r["threads"], f(r["queries_per_s"]),
                          f(r["calls_per_s"]), lat(r, "p50"), lat(r, "p99"),
                          r.get("queries_per_index_search"), r.get("recall_at_k"), r["errors"]]
                         for r in qd]), ""]
    with open(summary, "w") as fh:
        fh.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
