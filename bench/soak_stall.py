#!/usr/bin/env python3
"""Reproducer for the stall bench/soak.sh showed (fixed; docs/performance.md has before and
after): a snapshot save (after a build or import, or when the write-ahead log passes
--wal-snapshot-mb) held the collection's writers' mutex through its file writes and fsyncs, and
Upsert/Delete waited for that mutex ON A gRPC POLLING THREAD, so every call queued behind those
threads (searches of any collection, Describe) waited until the save ended. Now the save holds the
mutex only while it copies the collection, and writes run on writer threads. It prints the
longest search that started during the save: with writers it equalled the save's length.

    PYTHONPATH=clients/python build-soak/venv/bin/python bench/soak_stall.py \\
        [--n 400000] [--dim 128] [--writers 0,1,2] [--threads 2]

For each writer count: a fresh quiverd (--threads T), one Flat collection of N random vectors,
one search client (batch 1, k 10, closed loop) and W writer clients (1-vector upserts, closed
loop), then one BuildIndex; prints the build's save phase (from its progress stream) and the
search latency while it runs against before. Synthetic data (seeded), no data set needed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import quiver_client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(a, writers):
    work = tempfile.mkdtemp(prefix="quiver-stall.")
    pf = os.path.join(work, "port")
    argv = [a.quiverd, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
            "--port-file", pf, "--threads", str(a.threads), "--log-level", "warn"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        while not (os.path.exists(pf) and open(pf).read().strip()):
            if proc.poll() is not None:
                raise RuntimeError("quiverd exited")
            time.sleep(0.05)
        target = "127.0.0.1:" + open(pf).read().strip()
        rng = np.random.default_rng(1)
        x = rng.standard_normal((a.n, a.dim), dtype=np.float32)
        with quiver_client.Client(target, timeout=600) as c:
            while True:
                try:
                    if c.health():
                        break
                except quiver_client.QuiverError:
                    time.sleep(0.05)
            c.create("big", dim=a.dim, spec="Flat")
            c.upsert("big", np.arange(a.n), x)
            c.build("big")  # the first save; the run below measures the second
            stop = threading.Event()
            lat = []  # (start, ms)
            wrote = [0]

            def searcher():
                with quiver_client.Client(target, timeout=600) as s:
                    q = x[:100] + 0.01
                    i = 0
                    while not stop.is_set():
                        t = time.time()
                        s.search("big", q[i % 100], k=10)
                        lat.append((t, (time.time() - t) * 1e3))
                        i += 1

            def writer(w):
                with quiver_client.Client(target, timeout=600) as cw:
                    r = np.random.default_rng(100 + w)
                    j = 0
                    while not stop.is_set():
                        cw.upsert("big", [a.n + w + writers * j],
                                  r.standard_normal((1, a.dim), dtype=np.float32))
                        j += 1
                        wrote[0] += 1

            ts = [threading.Thread(target=searcher)]
            ts += [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
            for t in ts:
                t.start()
            time.sleep(3)
            phases = {}

            def progress(phase, done, total):
                phases.setdefault(phase, time.time())
            t_b = time.time()
            c.build("big", progress=progress)
            t_e = time.time()
            time.sleep(2)
            stop.set()
            for t in ts:
                t.join()
        save0 = phases.get("save", t_b)
        before = [ms for t, ms in lat if t < t_b - 0.2]
        during = [ms for t, ms in lat if save0 <= t <= t_e]
        stalled = [ms for t, ms in lat if ms > 100]
        print(f"writers {writers}, --threads {a.threads}: build {t_e - t_b:.2f} s, its save "
              f"phase {t_e - save0:.2f} s; searches before: {len(before)}, max "
              f"{max(before, default=0):.0f} ms; started during the save: {len(during)}, max "
              f"{max(during, default=0):.0f} ms; longest search of the run "
              f"{max(ms for _, ms in lat):.0f} ms; searches over 100 ms: "
              f"{len(stalled)}; upserts done {wrote[0]}", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiverd", default=os.path.join(REPO, "build", "bin", "quiverd"))
    ap.add_argument("--n", type=int, default=400000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--writers", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2, help="quiverd --threads (polling threads)")
    a = ap.parse_args()
    for w in [int(v) for v in a.writers.split(",")]:
        run(a, w)


if __name__ == "__main__":
    sys.exit(main())
