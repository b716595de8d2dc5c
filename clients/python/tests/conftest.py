"""Fixtures: a real quiverd on a free loopback port, a client, the shared sift5k data set.

QUIVER_BIN_DIR      where quiverd and quiver are (default <repo>/build/bin)
QUIVER_SHARED_DATA  the shared data sets (default <repo>/../shared/data)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import quiver_client

REPO = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("QUIVER_BIN_DIR") or REPO / "build" / "bin")
DATA_DIR = Path(os.environ.get("QUIVER_SHARED_DATA") or REPO.parent / "shared" / "data")
SIFT = DATA_DIR / "sift5k" / "sift5k"


def read_vecs(path: Path, dtype: str) -> np.ndarray:
    """A .fvecs ('<f4') or .ivecs ('<i4') file: each row is an int32 dim, then dim values."""
    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        raise ValueError(f"{path}: empty")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1):
        raise ValueError(f"{path}: {raw.size} words do not make rows of 1 + {d}")
    rows = raw.reshape(-1, d + 1)
    if not (rows[:, 0] == d).all():
        raise ValueError(f"{path}: rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype).astype(dtype.replace("<", "="))


def recall_at_k(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    """|returned top-k ∩ true top-k| / k, averaged over queries (as tests/common/testdata.h)."""
    hits = sum(len(np.intersect1d(row[row >= 0], truth)) for row, truth in zip(ids[:, :k], gt[:, :k]))
    return hits / (len(ids) * k)


class Quiverd:
    """quiverd started as tests/server/quiverd_fixture.h does: port 0, --port-file, temp data dir."""

    def __init__(self, workdir: Path, extra=()):
        self.data_dir = workdir / "data"
        self.port_file = workdir / "quiverd.port"
        self.log_path = workdir / "quiverd.log"
        exe = BIN_DIR / "quiverd"
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} is missing: build it (cmake --build build --target quiverd quiver) "
                        "or set QUIVER_BIN_DIR", pytrace=False)
        # The QUIVER_* environment configures quiverd too: keep the caller's out of the test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
        args = [str(exe), "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
                "--port-file", str(self.port_file), "--log-level", "debug", *extra]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        self.port = self._wait_for_port(30.0)
        self.target = f"127.0.0.1:{self.port}"

    def _wait_for_port(self, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                text = self.port_file.read_text().strip()
                if text and int(text) > 0:
                    return int(text)
            except (FileNotFoundError, ValueError):
                pass
            if self.proc.poll() is not None:
                pytest.fail(f"quiverd exited early with {self.proc.returncode}; log:\n{self.log()}",
                            pytrace=False)
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"quiverd did not write {self.port_file} within {seconds:.0f} s; log:\n"
                    f"{self.log()}", pytrace=False)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def stop(self, sig=signal.SIGTERM, seconds: float = 30.0):
        """Sends ``sig`` and waits; the exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Quiverd(tmp_path_factory.mktemp("quiverd"))
    yield srv
    rc = srv.stop()
    assert rc == 0, f"quiverd exited with {rc} after SIGTERM (expected 0); log:\n{srv.log()}"


@pytest.fixture(scope="session")
def client(server):
    with quiver_client.Client(server.target, timeout=60.0) as c:
        yield c


@dataclasses.dataclass
class Sift:
    base: np.ndarray     # float32 [5000, 128]
    queries: np.ndarray  # float32 [nq, 128]
    gt: np.ndarray       # int32 [nq, >= 10]
    query_file: Path


@pytest.fixture(scope="session")
def sift():
    files = [Path(f"{SIFT}_{part}") for part in ("base.fvecs", "query.fvecs", "groundtruth.ivecs")]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        pytest.skip(f"sift5k data set not found ({', '.join(missing)}): data-dependent test "
                    "skipped; set QUIVER_SHARED_DATA to the directory holding sift5k/")
    return Sift(read_vecs(files[0], "<f4"), read_vecs(files[1], "<f4"),
                read_vecs(files[2], "<i4"), files[1])


@dataclasses.dataclass
class Loaded:
    name: str
    created: quiver_client.CollectionInfo
    count: int
    built: quiver_client.CollectionInfo
    progress: list  # (phase, done, total) per message


@pytest.fixture(scope="session")
def sift_collection(client, sift):
    """sift5k in collection 'sift' (IVF64,Flat, l2), created, upserted and built through the API."""
    name = "sift"
    created = client.create(name, dim=128, metric="l2", spec="IVF64,Flat", default_nprobe=16)
    # Small chunks, so the upsert stream really is many messages.
    count = client.upsert(name, np.arange(len(sift.base), dtype=np.int64), sift.base,
                          chunk_bytes=256 << 10)
    progress = []
    built = client.build(name, progress=lambda *p: progress.append(p))
    return Loaded(name, created, count, built, progress)
