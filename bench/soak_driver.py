#!/usr/bin/env python3
"""The soak driver behind bench/soak.sh: a mixed load through a real quiverd for N minutes, one
row of figures a minute, then a consistency check of the collection against a model of the
acknowledged writes, on the live server and again after restarting it on the same data dir.

    soak_driver.py --quiverd build/bin/quiverd --quiver build/bin/quiver --workdir DIR
                   [--minutes N] [options: --help]

Run it through bench/soak.sh, which makes the Python environment and cleans up. Load, all at
once: search clients at batch 1 and at batch 64 (separate processes, closed loop), writer threads
(each upserts new ids and replaces existing ones, then deletes some, on its own slice of the id
space, id % writers, so that the model of each slice is exact), rebuilds (BuildIndex) at fixed
seconds of every minute, one ImportIndex (an index directory built offline with
`quiver index build` at start, pushed at half time with writes paused: an import is "this is the
collection now", so the model becomes the imported set), Describe calls. Exit status: 0 PASS,
1 FAIL, 2 setup error.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_fvecs(path: str) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def pct(a, q):
    return float(np.percentile(np.asarray(a, dtype=np.float64), q)) if len(a) else float("nan")


# ---------------------------------------------------------------------------------------------
# Search clients: one process each (the GIL would otherwise be the bottleneck).

def search_worker(kind, wid, target, collection, queries_path, batch, k, seed, t0v, start_evt,
                  stop_evt, out_q, slow_ms):
    import quiver_client  # noqa: imported in the child (spawn)

    # The parent stops us (stop_evt); Ctrl-C is its business. If it dies, we notice and go.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    q = read_fvecs(queries_path)
    rng = np.random.default_rng(seed)
    pos = int(rng.integers(len(q)))
    client = quiver_client.Client(target, timeout=30.0)
    lat: dict = {}    # minute -> [ms]
    errs: dict = {}   # minute -> count
    msgs: list = []
    slow: list = []   # (seconds since t0 at the call's start, ms) of calls over slow_ms

    def one():
        nonlocal pos
        idx = (pos + np.arange(batch)) % len(q)
        pos += batch
        t = time.perf_counter()
        try:
            ids, _ = client.search(collection, q[idx], k=k)
            ok = ids.shape == (batch, k) and bool((ids >= 0).all())
            why = None if ok else f"malformed answer: shape {ids.shape}, {int((ids < 0).sum())} ids -1"
        except quiver_client.QuiverError as e:
            ok, why = False, str(e)
        return ok, why, (time.perf_counter() - t) * 1e3

    try:
        one()  # connect and warm up before the clock starts
        out_q.put(("ready", kind, wid))
        while not start_evt.wait(1.0):
            if os.getppid() != parent:
                return
        t0 = t0v.value
        last_flush = time.time()
        while not stop_evt.is_set():
            ok, why, ms = one()
            now = time.time()
            m = int((now - t0) // 60)
            if ms > slow_ms:
                slow.append((now - t0 - ms / 1e3, ms))
            if ok:
                lat.setdefault(m, []).append(ms)
            else:
                errs[m] = errs.get(m, 0) + 1
                if len(msgs) < 5:
                    msgs.append(why)
            if time.time() - last_flush >= 0.5:
                out_q.put(("search", kind, lat, errs, msgs, slow))
                lat, errs, msgs, slow = {}, {}, [], []
                last_flush = time.time()
                if os.getppid() != parent:
                    return
        out_q.put(("search", kind, lat, errs, msgs, slow))
    except Exception:  # noqa: anything else is a bug of the driver or the client: report it
        out_q.put(("crash", kind, wid, traceback.format_exc()))
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------

class IdSet:
    """A set with O(1) add, remove and random sampling."""

    def __init__(self):
        self.items: list = []
        self.pos: dict = {}

    def add(self, x):
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x):
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def sample(self, rng, k):
        k = min(k, len(self.items))
        return [self.items[i] for i in rng.choice(len(self.items), size=k, replace=False)]

    def __len__(self):
        return len(self.items)


class Model:
    """What the collection must hold: acknowledged upserts minus acknowledged deletes."""

    def __init__(self, parts):
        self.lock = threading.Lock()
        self.parts = parts
        self.live = [IdSet() for _ in range(parts)]
        self.vec: dict = {}       # live id -> its last acknowledged vector
        self.deleted: dict = {}   # id not present -> the vector it had (for the check)
        self.uncertain: set = set()  # ids of failed (unacknowledged) writes: state unknown

    def upserted(self, ids, vecs):
        with self.lock:
            for i, v in zip(ids, vecs):
                self.live[i % self.parts].add(i)
                self.vec[i] = v
                self.deleted.pop(i, None)

    def removed(self, ids):
        with self.lock:
            for i in ids:
                self.live[i % self.parts].discard(i)
                v = self.vec.pop(i, None)
                if v is not None:
                    self.deleted[i] = v

    def unknown(self, ids):
        with self.lock:
            for i in ids:
                self.live[i % self.parts].discard(i)
                self.vec.pop(i, None)
                self.deleted.pop(i, None)
                self.uncertain.add(i)

    def replace_all(self, ids, vecs):
        """After an import: the imported set is the collection now."""
        with self.lock:
            self.deleted.update(self.vec)
            self.vec = {}
            self.live = [IdSet() for _ in range(self.parts)]
            self.uncertain = set()
        self.upserted(ids, vecs)

    def size(self):
        with self.lock:
            return len(self.vec)


class RWGate:
    """Writers share it; the import takes it alone (writes pause while the import swaps)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.readers = 0
        self.writer = False

    def shared(self):
        gate = self

        class _C:
            def __enter__(self):
                with gate.cv:
                    while gate.writer:
                        gate.cv.wait()
                    gate.readers += 1

            def __exit__(self, *a):
                with gate.cv:
                    gate.readers -= 1
                    gate.cv.notify_all()
        return _C()

    def exclusive(self):
        gate = self

        class _C:
            def __enter__(self):
                with gate.cv:
                    while gate.writer:
                        gate.cv.wait()
                    gate.writer = True
                    while gate.readers:
                        gate.cv.wait()

            def __exit__(self, *a):
                with gate.cv:
                    gate.writer = False
                    gate.cv.notify_all()
        return _C()


def proc_sample(pid):
    """(RSS MiB, open fds, threads) of a process, from /proc."""
    rss = thr = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                elif line.startswith("Threads:"):
                    thr = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None, None, None
    return rss, fds, thr


class Server:
    def __init__(self, a):
        self.a = a
        self.proc = None
        self.port = None
        self.starts = 0
        self.log_path = os.path.join(a.workdir, "quiverd.log")
        self.data_dir = os.path.join(a.workdir, "data")
        self.port_file = os.path.join(a.workdir, "quiverd.port")

    def argv(self):
        return ([self.a.quiverd, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                 "--port-file", self.port_file, "--log-level", "info"]
                + shlex.split(self.a.server_flags))

    def start(self):
        import quiver_client
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"---- soak: start #{self.starts}: {shlex.join(self.argv())}\n")
        log.flush()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        with open(os.path.join(self.a.workdir, "quiverd.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")
        t_end = time.time() + 120
        while time.time() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"quiverd exited with {self.proc.returncode} at start "
                                   f"(log: {self.log_path})")
            try:
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    with quiver_client.Client(self.target(), timeout=2.0) as c:
                        if c.health():
                            return time.time()
            except (OSError, ValueError, quiver_client.QuiverError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"quiverd did not serve within 120 s (log: {self.log_path})")

    def target(self):
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout=60):
        """SIGTERM and wait; returns (exit status, seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = f"{rc} (SIGKILL after {timeout} s: it did not stop)"
        return rc, time.time() - t

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# ---------------------------------------------------------------------------------------------

class Soak:
    def __init__(self, a):
        self.a = a
        self.failures: list = []
        self.stats_lock = threading.Lock()
        self.minute: dict = {}  # minute -> dict of counters and lists
        self.errors: dict = {}  # kind -> [count, [first messages]]
        self.build_log: list = []  # (minute, seconds, recall, ok)
        self.import_log: list = []
        self.stop = threading.Event()
        self.admin_lock = threading.Lock()  # builds and the import, one at a time
        self.gate = RWGate()
        self.server = Server(a)
        self.t0 = None
        self.t_end = None
        self.peak_rss = 0.0
        self.slow: list = []    # (seconds since t0 at the start, ms, what) of calls over --slow-ms
        self.events: list = []  # (start, end) seconds since t0, what: builds and the import
        self.fault_upsert = self.fault_delete = a.self_test

    # -- bookkeeping ------------------------------------------------------------------------

    def m_now(self):
        return int((time.time() - self.t0) // 60) if self.t0 else -1

    def bucket(self, m):
        b = self.minute.get(m)
        if b is None:
            b = self.minute[m] = dict(lat1=[], lat64=[], upserted=0, deleted=0, upsert_calls=0,
                                      delete_calls=0, builds=0, imports=0, describes=0,
                                      errors=0, rss_max=0.0, count=None, sample=None)
        return b

    def add(self, m, **kw):
        with self.stats_lock:
            b = self.bucket(m)
            for key, v in kw.items():
                b[key] += v

    def error(self, kind, msg, m=None, n=1):
        with self.stats_lock:
            e = self.errors.setdefault(kind, [0, []])
            e[0] += n
            if len(e[1]) < 5 and msg:
                e[1].append(msg)
            self.bucket(self.m_now() if m is None else m)["errors"] += n

    # -- data -------------------------------------------------------------------------------

    def load_data(self):
        a = self.a
        prefix = os.path.join(a.data_root, a.data, a.data)
        self.base_path = prefix + "_base.fvecs"
        self.query_path = prefix + "_query.fvecs"
        self.base = read_fvecs(self.base_path)
        self.n0, self.dim = self.base.shape
        norms = np.linalg.norm(self.base, axis=1)
        self.unit = bool(np.allclose(norms, 1.0, atol=1e-3))
        self.sigma = a.noise * float(np.sqrt(np.mean(self.base.astype(np.float64) ** 2)))

    def noisy(self, rng, n):
        v = self.base[rng.integers(self.n0, size=n)] + rng.normal(0, self.sigma, (n, self.dim))
        if self.unit:
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        return np.ascontiguousarray(v, dtype=np.float32)

    def make_import_dir(self):
        """The import's content, built offline: the base perturbed (seeded), ids = row numbers."""
        rng = np.random.default_rng(self.a.seed + 999)
        v = self.base + rng.normal(0, self.sigma, self.base.shape)
        if self.unit:
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        self.import_vecs = np.ascontiguousarray(v, dtype=np.float32)
        self.import_ids = list(range(self.n0))
        npy = os.path.join(self.a.workdir, "import_vectors.npy")
        np.save(npy, self.import_vecs)
        self.import_dir = os.path.join(self.a.workdir, "import-index")
        self.import_cmd = [self.a.quiver, "index", "build", "--input", npy, "--spec", self.a.spec,
                           "--metric", "l2", "--out", self.import_dir]
        r = subprocess.run(self.import_cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(self.import_cmd)} failed:\n{r.stdout}{r.stderr}")

    # -- load -------------------------------------------------------------------------------

    def writer(self, w):
        import quiver_client
        a = self.a
        rng = np.random.default_rng(a.seed + 100 + w)
        next_new = self.n0 + w  # new ids of this slice: n0 + w + writers * j
        period = 1.0 / a.write_rate
        t_next = time.time()
        with quiver_client.Client(self.server.target(), timeout=30.0) as c:
            while not self.stop.is_set():
                with self.gate.shared():
                    if self.stop.is_set():
                        break
                    live = self.model.live[w]
                    new = []
                    for _ in range(a.upsert_new):
                        new.append(next_new)
                        next_new += a.writers
                    with self.model.lock:
                        rep = live.sample(rng, a.upsert_replace)
                    ids = new + rep
                    vecs = self.noisy(rng, len(ids))
                    try:
                        tc = time.time()
                        c.upsert(a.collection, ids, vecs, timeout=60.0)
                        self.note_slow(tc, "upsert")
                        if self.fault_upsert and w == 0 and self.import_log:  # --self-test
                            # forget one acknowledged new id
                            self.fault_upsert = False
                            ids, vecs = ids[1:], vecs[1:]
                        self.model.upserted(ids, list(vecs))
                        self.add(self.m_now(), upserted=len(ids), upsert_calls=1)
                    except quiver_client.QuiverError as e:
                        self.model.unknown(ids)
                        self.error("upsert", str(e))
                    with self.model.lock:
                        dels = live.sample(rng, a.delete_batch)
                    if dels:
                        try:
                            tc = time.time()
                            deleted, _count = c.delete(a.collection, dels)
                            self.note_slow(tc, "delete")
                            if self.fault_delete and w == 0 and self.import_log:  # --self-test
                                self.fault_delete = False
                                self.model.removed(dels[1:])  # forget one acknowledged delete
                                with self.model.lock:  # (and never touch that id again)
                                    live.discard(dels[0])
                            else:
                                self.model.removed(dels)
                            self.add(self.m_now(), deleted=len(dels), delete_calls=1)
                            if deleted != len(dels):
                                self.failures.append(
                                    f"Delete of {len(dels)} ids the model holds answered deleted="
                                    f"{deleted} (ids {dels[:8]}...): a lost write")
                        except quiver_client.QuiverError as e:
                            self.model.unknown(dels)
                            self.error("delete", str(e))
                t_next += period
                delay = t_next - time.time()
                if delay > 0:
                    self.stop.wait(delay)
                else:
                    t_next = time.time()

    def note_slow(self, t_start, what):
        ms = (time.time() - t_start) * 1e3
        if ms > self.a.slow_ms:
            with self.stats_lock:
                self.slow.append((t_start - self.t0, ms, what))

    def heartbeat(self):
        """Pauses of the driver process itself (GIL, scheduler): a slow call that overlaps one
        may be the driver's, not the server's."""
        last = time.time()
        while not self.stop.wait(0.1):
            now = time.time()
            if now - last > self.a.slow_ms / 1e3:
                with self.stats_lock:
                    self.slow.append((last - self.t0, (now - last) * 1e3,
                                      "DRIVER PAUSE (its heartbeat thread did not run)"))
            last = now

    def admin_schedule(self):
        a = self.a
        ev = []
        for m in range(a.minutes):
            for off in a.build_at:
                ev.append((self.t0 + 60 * m + off, "build"))
        ev.append((self.t0 + 60 * (a.minutes // 2) + a.import_at, "import"))
        return sorted(e for e in ev if e[0] < self.t_end - 1)

    def admin(self):
        import quiver_client
        a = self.a
        with quiver_client.Client(self.server.target(), timeout=30.0) as c:
            for when, what in self.admin_schedule():
                if self.stop.wait(max(0.0, when - time.time())):
                    return
                with self.admin_lock:
                    t = time.time()
                    if what == "build":
                        try:
                            info = c.build(a.collection, timeout=300.0)
                            self.add(self.m_now(), builds=1)
                            self.build_log.append((self.m_now() + 1, time.time() - t,
                                                   info.build_recall, info.count))
                            self.events.append((t - self.t0, time.time() - self.t0, "build"))
                        except quiver_client.QuiverError as e:
                            self.error("build", str(e))
                    else:
                        with self.gate.exclusive():
                            n_before = self.model.size()
                            try:
                                info, recall = c.push(a.collection, index_dir=self.import_dir,
                                                      timeout=300.0)
                                self.model.replace_all(self.import_ids, list(self.import_vecs))
                                self.add(self.m_now(), imports=1)
                                self.import_log.append((self.m_now() + 1, time.time() - t,
                                                        recall, n_before, info.count))
                                self.events.append((t - self.t0, time.time() - self.t0, "import"))
                                if info.count != len(self.import_ids):
                                    self.failures.append(
                                        f"ImportIndex of {len(self.import_ids)} vectors answered "
                                        f"count {info.count}")
                            except quiver_client.QuiverError as e:
                                self.error("import", str(e))

    def describer(self):
        import quiver_client
        a = self.a
        with quiver_client.Client(self.server.target(), timeout=30.0) as c:
            while not self.stop.wait(a.describe_every):
                m = self.m_now()
                try:
                    tc = time.time()
                    info = c.describe(a.collection)
                    self.note_slow(tc, "describe")
                    with self.stats_lock:
                        b = self.bucket(m)
                        b["describes"] += 1
                        b["count"] = info.count
                except quiver_client.QuiverError as e:
                    self.error("describe", str(e))
                rss, _, _ = proc_sample(self.server.proc.pid)
                if rss is not None:
                    with self.stats_lock:
                        b = self.bucket(m)
                        b["rss_max"] = max(b["rss_max"], rss)
                        self.peak_rss = max(self.peak_rss, rss)

    def collector(self, out_q):
        while True:
            try:
                msg = out_q.get(timeout=0.2)
            except queue.Empty:
                if self.collect_done.is_set():
                    return
                continue
            if msg[0] == "search":
                _, kind, lat, errs, msgs, slow = msg
                with self.stats_lock:
                    self.slow += [(t, ms, f"search batch {kind}") for t, ms in slow]
                    for m, v in lat.items():
                        self.bucket(m)["lat1" if kind == 1 else "lat64"].extend(v)
                for m, n in errs.items():
                    self.error(f"search batch {kind}", msgs[0] if msgs else "", m=m, n=n)
                    msgs = msgs[1:]
            elif msg[0] == "ready":
                self.ready += 1
            elif msg[0] == "crash":
                self.failures.append(f"search client (batch {msg[1]}) #{msg[2]} crashed:\n{msg[3]}")
                self.ready += 1

    # -- the run ----------------------------------------------------------------------------

    def header(self):
        a = self.a
        s = self.server

        def git(*args):
            r = subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True)
            return r.stdout.strip() if r.returncode == 0 else "?"
        dirty = git("status", "--porcelain", "--untracked-files=no")
        import grpc
        print("== soak configuration", flush=True)
        cfg = [
            ("git commit", f"{git('rev-parse', 'HEAD')}"
                           f"{' + uncommitted changes in tracked files' if dirty else ''}"),
            ("host", f"{platform.node()}, {os.cpu_count()} cores, {platform.release()}, "
                     f"python {platform.python_version()}, grpcio {grpc.__version__}, "
                     f"numpy {np.__version__}"),
            ("data set", f"{a.data}: base {self.base_path} ({self.n0} x {self.dim}, "
                         f"{'unit length' if self.unit else 'not normalised'}), queries "
                         f"{self.query_path} ({len(read_fvecs(self.query_path))})"),
            ("collection", f"'{a.collection}', dim {self.dim}, metric l2, spec {a.spec}, default "
                           f"nprobe 16 (server default), initial load {self.n0} vectors (ids "
                           f"0..{self.n0 - 1}, the base) then one build"),
            ("search clients", f"{a.b1_clients} x batch 1 + {a.b64_clients} x batch {a.big_batch}, "
                               f"k {a.k}, collection nprobe, closed loop, one process and channel "
                               f"each (Python client), queries cycling through the query set"),
            ("writers", f"{a.writers} threads, each {a.write_rate:g} iterations/s of: Upsert "
                        f"{a.upsert_new} new ids + {a.upsert_replace} replaced ids (new vectors: a "
                        f"random base row + N(0, {a.noise:g} x rms)), then Delete {a.delete_batch} "
                        f"random live ids; each writer owns ids = writer (mod {a.writers})"),
            ("builds", f"BuildIndex at seconds {','.join(f'{x:g}' for x in a.build_at)} of every minute "
                       f"(one at a time; writes and searches go on)"),
            ("import", f"one ImportIndex (streamed, quiver_client push) at minute "
                       f"{a.minutes // 2 + 1}, second {a.import_at:g}: {self.n0} vectors (the base "
                       f"perturbed, seed {a.seed + 999}, ids 0..{self.n0 - 1}) built offline by "
                       f"`{shlex.join(self.import_cmd)}`; writes pause during it, searches go on; "
                       f"the model becomes the imported set"),
            ("describe", f"DescribeCollection every {a.describe_every:g} s (also samples RSS for "
                         f"rss_max)"),
            ("quiverd", shlex.join(s.argv())),
            ("durations", f"{a.minutes} minute(s) of load; latency = client-side wall time of one "
                          f"call through the Python client"),
            ("check", f"count == model; exact k=1 search (SearchRequest.exact) of "
                      f"{'every' if a.check_live == 0 else f'up to {a.check_live}'} live model "
                      f"vector(s) returns its id; the same through the index at nprobe = nlist; "
                      f"up to {a.check_deleted} deleted ids' last vectors do not return them; "
                      f"no returned id outside the model; after the run and after a restart"),
        ]
        for key, v in cfg:
            print(f"  {key:15s} {v}")
        print(flush=True)

    def row(self, m):
        a = self.a
        with self.stats_lock:
            b = self.bucket(m)
        rss, fds, thr = b["sample"] or (None, None, None)
        q1 = len(b["lat1"]) / 60.0
        q64 = len(b["lat64"]) * a.big_batch / 60.0

        def f(x, spec):
            return "-" if x is None or x != x else format(x, spec)
        cells = [str(m + 1), f(q1, ".0f"), f(pct(b["lat1"], 99), ".2f"),
                 f(max(b["lat1"], default=None), ".0f"), f(q64, ".0f"),
                 f(len(b["lat64"]) / 60.0, ".1f"), f(pct(b["lat64"], 99), ".1f"),
                 f(max(b["lat64"], default=None), ".0f"),
                 f(b["upserted"] / 60.0, ".0f"), f(b["deleted"] / 60.0, ".0f"), str(b["builds"]),
                 str(b["imports"]), str(b["describes"]), str(b["errors"]),
                 f(b["count"], "d"), f(rss, ".1f"), f(b["rss_max"] or None, ".1f"),
                 f(fds, "d"), f(thr, "d")]
        return "| " + " | ".join(cells) + " |"

    HEAD = ("| min | b1 q/s | b1 p99 ms | b1 max ms | b64 q/s | b64 calls/s | b64 p99 ms | "
            "b64 max ms | upserts/s | "
            "deletes/s | builds | imports | describes | errors | count | RSS MiB | RSS max MiB | "
            "fds | threads |")

    def run(self):
        import quiver_client
        a = self.a
        self.load_data()
        self.model = Model(a.writers)
        self.make_import_dir()
        os.makedirs(self.server.data_dir, exist_ok=True)
        self.server.start()
        self.header()

        with quiver_client.Client(self.server.target(), timeout=60.0) as c:
            c.create(a.collection, dim=self.dim, metric="l2", spec=a.spec)
            c.upsert(a.collection, np.arange(self.n0), self.base)
            self.model.upserted(list(range(self.n0)), list(self.base))
            t = time.time()
            info = c.build(a.collection)
            print(f"initial build: {time.time() - t:.1f} s, count {info.count}, nlist {info.nlist}, "
                  f"recall@{info.build_recall_k} {info.build_recall:.3f} at nprobe "
                  f"{info.build_recall_nprobe}", flush=True)

        ctx = mp.get_context("spawn")
        out_q = ctx.Queue()
        start_evt, stop_evt = ctx.Event(), ctx.Event()
        t0v = ctx.Value("d", 0.0)
        procs = []
        for kind, n in ((1, a.b1_clients), (a.big_batch, a.b64_clients)):
            for i in range(n):
                p = ctx.Process(target=search_worker,
                                args=(1 if kind == 1 else 64, i, self.server.target(),
                                      a.collection, self.query_path, kind, a.k,
                                      a.seed + 1000 * kind + i, t0v, start_evt, stop_evt, out_q,
                                      a.slow_ms),
                                daemon=True)
                p.start()
                procs.append(p)
        self.ready = 0
        self.collect_done = threading.Event()
        coll = threading.Thread(target=self.collector, args=(out_q,), daemon=True)
        coll.start()
        t_wait = time.time() + 120
        while self.ready < len(procs) and time.time() < t_wait:
            time.sleep(0.05)
        if self.ready < len(procs):
            raise RuntimeError(f"only {self.ready} of {len(procs)} search clients came up")

        self.t0 = time.time()
        self.t_end = self.t0 + 60 * a.minutes
        t0v.value = self.t0
        start_evt.set()
        def guarded(fn, *args):
            def body():
                try:
                    fn(*args)
                except Exception:  # noqa: a bug of the driver: the run cannot pass
                    self.failures.append(f"driver thread {fn.__name__}{args} crashed:\n"
                                         + traceback.format_exc())
            return threading.Thread(target=body, name=f"{fn.__name__}{args}", daemon=True)
        threads = [guarded(self.writer, w) for w in range(a.writers)]
        threads += [guarded(self.admin), guarded(self.describer), guarded(self.heartbeat)]
        for t in threads:
            t.start()

        print(self.HEAD)
        print("|" + "|".join("---" for _ in range(self.HEAD.count("|") - 1)) + "|", flush=True)
        died = False
        for m in range(a.minutes):
            boundary = self.t0 + 60 * (m + 1)
            while time.time() < boundary:
                if not self.server.alive():
                    died = True
                    break
                time.sleep(min(0.2, max(0.0, boundary - time.time())))
            if died:
                break
            s = proc_sample(self.server.proc.pid)
            with self.stats_lock:
                self.bucket(m)["sample"] = s
                if s[0] is not None:
                    self.bucket(m)["rss_max"] = max(self.bucket(m)["rss_max"], s[0])
                    self.peak_rss = max(self.peak_rss, s[0])
            if m == a.minutes - 1:
                self.stop.set()
                stop_evt.set()
            time.sleep(1.2)  # the search clients flush every 0.5 s
            print(self.row(m), flush=True)

        self.stop.set()
        stop_evt.set()
        for t in threads:
            t.join(timeout=600)
            if t.is_alive():
                self.failures.append(f"thread {t.name} did not finish within 600 s of the end")
        for p in procs:
            p.join(timeout=60)
            if p.exitcode != 0:
                self.failures.append(f"search client pid {p.pid} exit status {p.exitcode}")
        self.collect_done.set()
        coll.join()
        if died or not self.server.alive():
            self.failures.append(f"quiverd exited during the load with status "
                                 f"{self.server.proc.returncode} (log {self.server.log_path}):\n"
                                 + self.log_tail())
            return self.report(checks=[])

        print()
        self.summary()
        if a.malloc_trim:
            self.trim()
        checks = [self.check("after the run (same process)")]
        rc, secs = self.server.stop()
        print(f"\nquiverd stopped by SIGTERM: exit status {rc}, {secs:.1f} s", flush=True)
        if rc != 0:
            self.failures.append(f"quiverd's SIGTERM stop exited {rc} (log {self.server.log_path}):"
                                 f"\n" + self.log_tail())
        t = time.time()
        self.server.start()
        print(f"quiverd restarted on the same data dir: serving after {time.time() - t:.1f} s, "
              f"RSS/fds/threads {proc_sample(self.server.proc.pid)}", flush=True)
        checks.append(self.check("after a restart on the same data dir"))
        return self.report(checks)

    def trim(self):
        """--malloc-trim: how much of quiverd's RSS is free heap glibc keeps (gdb calls
        malloc_trim(0) inside quiverd; what stays is in use, or fragmented)."""
        pid = self.server.proc.pid
        before = proc_sample(pid)[0]
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           capture_output=True, text=True, timeout=120)
        after = proc_sample(pid)[0]
        note = "" if r.returncode == 0 else f" (gdb exit {r.returncode}: " + \
            ((r.stdout + r.stderr).strip().splitlines() or ["?"])[-1] + ")"
        print(f"malloc_trim(0) in quiverd (gdb): RSS {before:.1f} -> {after:.1f} MiB{note}",
              flush=True)

    def log_tail(self, n=30):
        try:
            with open(self.server.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def summary(self):
        a = self.a
        mins = sorted(m for m in self.minute if 0 <= m < a.minutes)
        lat1 = [x for m in mins for x in self.minute[m]["lat1"]]
        lat64 = [x for m in mins for x in self.minute[m]["lat64"]]
        tot = {k: sum(self.minute[m][k] for m in self.minute)
               for k in ("upserted", "deleted", "upsert_calls", "delete_calls", "builds",
                         "imports", "describes", "errors")}
        secs = 60.0 * a.minutes
        print(f"totals: {len(lat1)} batch-1 searches ({len(lat1) / secs:.0f}/s, p50 "
              f"{pct(lat1, 50):.2f} ms, p99 {pct(lat1, 99):.2f} ms, max {max(lat1, default=0):.1f} "
              f"ms); {len(lat64)} batch-{a.big_batch} searches ({len(lat64) * a.big_batch / secs:.0f}"
              f" q/s, p50 {pct(lat64, 50):.1f} ms, p99 {pct(lat64, 99):.1f} ms, max "
              f"{max(lat64, default=0):.1f} ms)")
        print(f"        {tot['upserted']} vectors upserted in {tot['upsert_calls']} calls, "
              f"{tot['deleted']} deleted in {tot['delete_calls']} calls, {tot['builds']} builds, "
              f"{tot['imports']} import(s), {tot['describes']} describes, {tot['errors']} failed "
              f"calls; peak RSS {self.peak_rss:.1f} MiB")
        if self.build_log:
            d = [x[1] for x in self.build_log]
            print(f"builds: {len(d)}, {min(d):.1f} .. {max(d):.1f} s each (median "
                  f"{pct(d, 50):.1f}), recall@10 {min(x[2] for x in self.build_log):.3f} .. "
                  f"{max(x[2] for x in self.build_log):.3f}")
        for mm, secs_i, rec, before, after in self.import_log:
            print(f"import: minute {mm}, {secs_i:.1f} s, recall {rec:.3f}, model {before} -> "
                  f"server count {after}")
        for kind, (n, msgs) in self.errors.items():
            print(f"errors: {kind}: {n}; first: {msgs}")
        self.print_slow()
        # Flatness after warm-up: the last minute against minute 2.
        samples = {m: self.minute[m]["sample"] for m in mins if self.minute[m]["sample"]}
        if samples:
            last = max(samples)
            base = 1 if a.minutes >= 3 else 0
            base = base if base in samples else min(samples)
            r0, f0, t0 = samples[base]
            r1, f1, t1 = samples[last]
            x0, x1 = self.minute[base]["rss_max"], self.minute[last]["rss_max"]
            grow = r1 - r0
            print(f"flatness (end-of-minute samples, minute {base + 1} -> minute {last + 1}): "
                  f"RSS {r0:.1f} -> {r1:.1f} MiB ({grow:+.1f} MiB, {100 * grow / r0:+.1f} %); "
                  f"per-minute max RSS {x0:.1f} -> {x1:.1f} MiB ({x1 - x0:+.1f}); fds {f0} -> {f1} "
                  f"({f1 - f0:+d}); threads {t0} -> {t1} ({t1 - t0:+d})")
            xs = sorted(m for m in samples if m >= base)
            if len(xs) >= 3:
                ys = [samples[m][0] for m in xs]
                slope = float(np.polyfit(xs, ys, 1)[0])
                print(f"  RSS least-squares slope over minutes {xs[0] + 1}..{xs[-1] + 1}: "
                      f"{slope:+.2f} MiB/minute")
            if a.minutes < 3:
                print("  (too short to judge flatness: minute 1 is warm-up; use --minutes >= 3)")
            else:
                flat_rss = grow <= max(0.05 * r0, 16.0)
                flat_fd = f1 - f0 <= 2
                print(f"  verdict: RSS {'flat' if flat_rss else 'GROWING'} (threshold: +5 % or "
                      f"+16 MiB), fds {'flat' if flat_fd else 'GROWING'} (threshold: +2), threads "
                      f"{'flat' if t1 == t0 else 'changed'}")

    def print_slow(self):
        """Calls slower than --slow-ms, merged into windows, with the builds/import overlapping."""
        a = self.a
        path = os.path.join(a.workdir, "events.log")
        with open(path, "w") as f:
            for t0, t1, what in sorted(self.events):
                f.write(f"{t0:9.2f} {t1:9.2f} {what} ({t1 - t0:.2f} s)\n")
            for t, ms, what in sorted(self.slow):
                f.write(f"{t:9.2f} {t + ms / 1e3:9.2f} slow {what} {ms:.0f} ms\n")
        if not self.slow:
            print(f"slow calls (> {a.slow_ms:g} ms): none")
            return
        wins = []  # [start, end, n, {what}]
        for t, ms, what in sorted(self.slow):
            if wins and t <= wins[-1][1]:
                wins[-1][1] = max(wins[-1][1], t + ms / 1e3)
                wins[-1][2] += 1
                wins[-1][3].add(what)
            else:
                wins.append([t, t + ms / 1e3, 1, {what}])
        print(f"slow calls (> {a.slow_ms:g} ms): {len(self.slow)} in {len(wins)} window(s) "
              f"(seconds since the load started; all of them in {path}, which soak.sh copies to "
              f"build-soak/last/):")
        for w0, w1, n, whats in wins[:10]:
            over = [f"{what} {e0:.1f}..{e1:.1f}" for e0, e1, what in sorted(self.events)
                    if e0 < w1 and e1 > w0]
            print(f"  {w0:7.1f} .. {w1:7.1f} s (minute {int(w0 // 60) + 1}): {n} call(s) of "
                  f"{', '.join(sorted(whats))}; overlapping: {', '.join(over) or 'no build/import'}")

    def check(self, label):
        """The collection against the model; appends failures; returns a summary line."""
        import quiver_client
        a = self.a
        rng = np.random.default_rng(a.seed + 7)
        m = self.model
        live_ids = np.array(sorted(m.vec), dtype=np.int64)
        dead_ids = np.array(sorted(m.deleted), dtype=np.int64)
        if a.check_live and len(live_ids) > a.check_live:
            live_ids = np.sort(rng.choice(live_ids, a.check_live, replace=False))
        if len(dead_ids) > a.check_deleted:
            dead_ids = np.sort(rng.choice(dead_ids, a.check_deleted, replace=False))
        allowed = set(m.vec) | m.uncertain
        fails = []
        print(f"\n== consistency check {label}", flush=True)
        with quiver_client.Client(self.server.target(), timeout=120.0) as c:
            info = c.describe(a.collection)
            print(f"  describe: state {info.state}, count {info.count}, indexed {info.indexed}, "
                  f"nlist {info.nlist}, index_version {info.index_version}, snapshot_version "
                  f"{info.snapshot_version}, wal_records {info.wal_records}, tombstones "
                  f"{info.tombstones}{', note: ' + info.storage_note if info.storage_note else ''}")
            lo, hi = len(m.vec), len(m.vec) + len(m.uncertain)
            ok_count = lo <= info.count <= hi
            print(f"  count: server {info.count}, model {lo}"
                  f"{f' (+ up to {len(m.uncertain)} of failed writes)' if m.uncertain else ''}: "
                  f"{'ok' if ok_count else 'MISMATCH'}")
            if not ok_count:
                fails.append(f"{label}: count {info.count} != model {lo}")
            if info.indexed != info.count:
                fails.append(f"{label}: indexed {info.indexed} != count {info.count}")
                print(f"  indexed {info.indexed} != count {info.count}: MISMATCH")

            def probe(ids, **kw):
                """k=1 searches of the model vectors of ids -> returned ids, scores."""
                out_i, out_s = [], []
                for s in range(0, len(ids), 500):
                    chunk = ids[s:s + 500]
                    q = np.stack([m.vec[i] if i in m.vec else m.deleted[i] for i in chunk])
                    r_i, r_s = c.search(a.collection, q, k=1, **kw)
                    out_i.append(r_i[:, 0])
                    out_s.append(r_s[:, 0])
                if not out_i:
                    return np.zeros(0, np.int64), np.zeros(0, np.float32)
                return np.concatenate(out_i), np.concatenate(out_s)

            def judge(what, ids, got, scores):
                miss = [(int(i), int(g), float(s)) for i, g, s in zip(ids, got, scores) if i != g]
                # A true tie (another live id with the very same vector) is not a miss.
                real = [x for x in miss if not (x[1] in m.vec and
                                                np.array_equal(m.vec[x[1]], m.vec[x[0]]))]
                ghosts = sorted({int(g) for g in got if int(g) not in allowed and g >= 0})
                print(f"  {what}: {len(ids) - len(real)}/{len(ids)} return their own id"
                      f"{f' ({len(miss) - len(real)} exact ties)' if len(miss) != len(real) else ''}"
                      f"{'' if not real else f'; MISSES, first (id, returned, score): {real[:5]}'}")
                if real:
                    fails.append(f"{label}: {what}: {len(real)} of {len(ids)} miss, e.g. {real[:5]}")
                return ghosts

            try:
                ghosts = []
                got, sc = probe(live_ids, exact=True)
                ghosts += judge("exact k=1 of live model vectors", live_ids, got, sc)
                if info.nlist:
                    got, sc = probe(live_ids, nprobe=info.nlist)
                    ghosts += judge(f"index k=1 at nprobe {info.nlist} (= nlist)", live_ids, got,
                                    sc)
                got, sc = probe(dead_ids, exact=True)
                back = [(int(i), float(s)) for i, g, s in zip(dead_ids, got, sc) if i == g]
                ghosts += [int(g) for g in got if int(g) not in allowed and g >= 0]
                print(f"  exact k=1 of {len(dead_ids)} deleted ids' last vectors (of "
                      f"{len(m.deleted)} deleted): {len(back)} returned the deleted id"
                      f"{'' if not back else f' (first: {back[:5]})'}")
                if back:
                    fails.append(f"{label}: {len(back)} deleted ids returned, e.g. {back[:5]}")
                if info.nlist:
                    got, sc = probe(dead_ids, nprobe=info.nlist)
                    back = [(int(i), float(s)) for i, g, s in zip(dead_ids, got, sc) if i == g]
                    ghosts += [int(g) for g in got if int(g) not in allowed and g >= 0]
                    print(f"  index k=1 of the same deleted vectors: {len(back)} returned the "
                          f"deleted id")
                    if back:
                        fails.append(f"{label}: index search returned {len(back)} deleted ids, "
                                     f"e.g. {back[:5]}")
                ghosts = sorted(set(ghosts))
                print(f"  ids returned that the model does not hold: {len(ghosts)}"
                      f"{'' if not ghosts else f' (first: {ghosts[:10]})'}")
                if ghosts:
                    fails.append(f"{label}: {len(ghosts)} returned ids not in the model, e.g. "
                                 f"{ghosts[:10]}")
            except quiver_client.QuiverError as e:
                fails.append(f"{label}: check search failed: {e}")
        self.failures += fails
        verdict = "ok" if not fails else "FAIL"
        print(f"  -> {verdict}", flush=True)
        return f"{label}: {verdict}"

    def report(self, checks):
        if self.errors:
            self.failures.append("failed calls during the load: " + "; ".join(
                f"{k} {n}" for k, (n, _) in self.errors.items()))
        print()
        for ch in checks:
            print(f"check {ch}")
        if self.failures:
            print("FAIL")
            for f in self.failures:
                print(f"  - {f}")
            return 1
        print("PASS")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--quiverd", required=True)
    ap.add_argument("--quiver", required=True)
    ap.add_argument("--workdir", required=True, help="data dir, logs and the import index go here")
    ap.add_argument("--data-root", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--data", default="deep10k", help="deep10k | sift5k (DATA/DATA_base.fvecs)")
    ap.add_argument("--spec", default="IVF64,Flat")
    ap.add_argument("--collection", default="soak")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--b1-clients", type=int, default=4)
    ap.add_argument("--b64-clients", type=int, default=2)
    ap.add_argument("--big-batch", type=int, default=64)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--write-rate", type=float, default=5.0, help="iterations/s per writer")
    ap.add_argument("--upsert-new", type=int, default=16)
    ap.add_argument("--upsert-replace", type=int, default=16)
    ap.add_argument("--delete-batch", type=int, default=16)
    ap.add_argument("--noise", type=float, default=0.3, help="new vectors' noise, x the base's rms")
    ap.add_argument("--build-at", default="15,45", help="seconds of each minute a build starts")
    ap.add_argument("--import-at", type=float, default=30.0,
                    help="second of minute minutes/2+1 the import starts")
    ap.add_argument("--describe-every", type=float, default=0.5)
    ap.add_argument("--check-live", type=int, default=0, help="0 = every live id")
    ap.add_argument("--check-deleted", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--slow-ms", type=float, default=1000.0,
                    help="calls slower than this are listed with the builds/import they overlap")
    ap.add_argument("--self-test", action="store_true",
                    help="check the checker: the model forgets one acknowledged new id and one "
                         "acknowledged delete; the run must FAIL")
    ap.add_argument("--malloc-trim", action="store_true",
                    help="after the load, call malloc_trim(0) inside quiverd with gdb and print "
                         "RSS before and after (free heap glibc kept vs memory in use)")
    ap.add_argument("--server-flags", default="", help="more quiverd flags (one string)")
    a = ap.parse_args()
    a.build_at = [float(x) for x in a.build_at.split(",") if x]
    if a.minutes < 1:
        ap.error("--minutes must be >= 1")
    soak = Soak(a)
    try:
        rc = soak.run()
    except Exception:
        traceback.print_exc()
        print("FAIL (setup or driver error)")
        rc = 2
    finally:
        soak.stop.set()
        soak.server.stop()
    sys.exit(rc)


if __name__ == "__main__":
    main()
