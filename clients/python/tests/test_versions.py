"""Data versions through the Python client: push(stage=True), search(version=), rollout() and
the versions describe() shows, against the real quiverd.

Two versions of one collection hold the same ids with different embeddings (v2 = v1 with its
dimensions permuted), so that every answer is checked against the exact answer of the version it
says answered it.
"""

from __future__ import annotations

import pickle
import subprocess

import numpy as np
import pytest

import quiver_client
from conftest import BIN_DIR


def write_fvecs(path, x: np.ndarray) -> None:
    """x (float32 [n, d]) as an .fvecs file: each row an int32 d, then d floats."""
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype="<f4")
    rows[:, 1:] = x
    rows.view("<i4")[:, 0] = d
    rows.tofile(path)


def index_dir(tmp_path, name: str, x: np.ndarray) -> str:
    """An index built offline by `quiver index build` (Flat, l2) from x, ids 0..n-1."""
    src, out = tmp_path / f"{name}.fvecs", tmp_path / name
    write_fvecs(src, x)
    p = subprocess.run([str(BIN_DIR / "quiver"), "index", "build", "--input", str(src), "--spec",
                        "Flat", "--metric", "l2", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"quiver index build failed ({p.returncode}):\n{p.stdout}{p.stderr}"
    return str(out)


def assert_answers_of(x: np.ndarray, queries: np.ndarray, r: quiver_client.SearchResult,
                      k: int) -> None:
    """r holds x's exact answers: each score is its id's distance in x, the scores are the true
    top-k distances (ties may order ids either way, so scores are compared, not ids)."""
    ids, scores = r
    d = ((x[None, :, :].astype(np.float64) - queries[:, None, :]) ** 2).sum(axis=2)
    assert (ids >= 0).all() and (ids < len(x)).all()
    own = np.take_along_axis(d, ids, axis=1)
    np.testing.assert_allclose(scores, own, rtol=1e-4, atol=1.0)
    np.testing.assert_allclose(scores, np.sort(d, axis=1)[:, :k], rtol=1e-4, atol=1.0)


def answers_of(x, queries, r, k) -> bool:
    try:
        assert_answers_of(x, queries, r, k)
        return True
    except AssertionError:
        return False


@pytest.fixture(scope="module")
def two_versions(sift, tmp_path_factory):
    """Index directories of sift5k (v1) and of its dimensions permuted (v2), with the vectors."""
    tmp = tmp_path_factory.mktemp("versions")
    v1 = np.ascontiguousarray(sift.base, dtype=np.float32)
    v2 = np.ascontiguousarray(v1[:, (np.arange(v1.shape[1]) * 37 + 11) % v1.shape[1]])
    return v1, v2, index_dir(tmp, "v1", v1), index_dir(tmp, "v2", v2)


def test_stage_search_by_version_flip_and_rollback(client, sift, two_versions):
    v1, v2, d1, d2 = two_versions
    name, k, q = "versions", 10, sift.queries[:6]
    pushed = client.push(name, d1, create=True)
    assert isinstance(pushed, quiver_client.PushResult) and isinstance(pushed, tuple)
    info, recall = pushed
    assert pushed.version == 1 and info.version == 1 and info.versions == ()
    assert info.staged is None and info.previous is None
    assert recall == pushed.recall and pushed.info is info

    staged = client.push(name, d2, stage=True)
    assert staged.version == 2
    assert staged.info.version == 1  # still serving 1
    s = staged.info.staged
    assert isinstance(s, quiver_client.VersionInfo)
    assert (s.version, s.state, s.count) == (2, "staged", len(v2))
    assert s.memory_bytes >= v2.nbytes and s.recall_k > 0 and 0.99 <= s.recall <= 1.0
    d = client.describe(name)
    assert (d.version, d.staged, d.previous) == (1, s, None)
    assert d.to_dict()["versions"][0]["state"] == "staged"

    r = client.search(name, q, k=k)
    assert isinstance(r, quiver_client.SearchResult) and r.version == 1
    assert_answers_of(v1, q, r, k)
    assert not answers_of(v2, q, r, k), "the two versions' answers must differ"
    r = client.search(name, q, k=k, version=2)
    assert r.version == 2
    assert_answers_of(v2, q, r, k)
    r = client.search(name, q, k=k, version=2, exact=True)
    assert r.version == 2
    assert_answers_of(v2, q, r, k)
    assert client.search(name, q, k=k, version=1).version == 1
    again = pickle.loads(pickle.dumps(r))
    assert again.version == 2 and again.missing_shards == ()
    np.testing.assert_array_equal(again.ids, r.ids)
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, q, k=k, version=3)
    assert e.value.code.name == "FAILED_PRECONDITION"
    assert "does not hold data version 3" in e.value.details

    st = client.rollout(name, "flip", version=2)
    assert isinstance(st, quiver_client.RolloutStatus)
    assert (st.collection, st.version, st.staged) == (name, 2, None)
    assert (st.previous.version, st.previous.state, st.previous.count) == (1, "previous", len(v1))
    assert "flipped from version 1 to 2" in st.message
    r = client.search(name, q, k=k)
    assert r.version == 2
    assert_answers_of(v2, q, r, k)
    r = client.search(name, q, k=k, version=1)
    assert r.version == 1
    assert_answers_of(v1, q, r, k)
    assert client.describe(name).previous.version == 1

    st = client.rollout(name, "ROLLBACK")  # the action's case does not matter
    assert (st.version, st.versions) == (1, ())
    assert "rolled back from version 2 to 1" in st.message
    r = client.search(name, q, k=k)
    assert r.version == 1
    assert_answers_of(v1, q, r, k)
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, q, k=k, version=2)
    assert e.value.code.name == "FAILED_PRECONDITION"
    st = client.rollout(name, "status")
    assert (st.version, st.versions) == (1, ()) and "serving version 1" in st.message
    assert st.to_dict()["version"] == 1

    # Staged under its own number, then aborted; staged again, flipped, the previous released.
    assert client.push(name, d2, stage=True, version=5).version == 5
    assert client.rollout(name, "abort").versions == ()
    assert client.push(name, d2, stage=True).version == 2
    assert client.rollout(name, "flip").version == 2
    st = client.rollout(name, "release")
    assert (st.version, st.versions) == (2, ()) and "previous version 1 dropped" in st.message
    client.drop(name)


def test_upsert_while_staged_reaches_both_versions(client, sift, two_versions):
    v1, v2, d1, d2 = two_versions
    name, q = "versions_writes", sift.queries[:2]
    client.push(name, d1, create=True)
    client.push(name, d2, stage=True)
    # A new id at query 0 and id 7 moved onto query 1: first from both versions.
    assert client.upsert(name, [900000, 7], q) == len(v1) + 1
    gone = int(client.search(name, sift.queries[2:3], k=1, version=2).ids[0, 0])
    assert client.delete(name, [gone]) == (1, len(v1))
    for v in (1, 2):
        r = client.search(name, q, k=3, version=v)
        assert r.version == v
        assert list(r.ids[:, 0]) == [900000, 7]
        np.testing.assert_allclose(r.scores[:, 0], 0, atol=1.0)
        assert gone not in client.search(name, sift.queries[2:3], k=10, version=v).ids
    assert client.describe(name).staged.count == len(v1)
    client.drop(name)


def test_version_errors(client, tmp_path):
    """Refusals of push(stage=), search(version=) and rollout() and their status codes."""
    rng = np.random.default_rng(3)
    x = rng.random((400, 8), dtype=np.float32)
    d1 = index_dir(tmp_path, "e1", x)
    d16 = index_dir(tmp_path, "e16", rng.random((400, 16), dtype=np.float32))
    name = "versions_errors"

    def code(fn, *a, **kw):
        with pytest.raises(quiver_client.QuiverError) as e:
            fn(*a, **kw)
        return e.value.code.name, e.value.details

    # Client-side: an unknown action, a version without stage (no call is made).
    c, det = code(client.rollout, name, "frobnicate")
    assert c == "INVALID_ARGUMENT" and "flip" in det
    c, det = code(client.push, name, d1, version=3)
    assert c == "INVALID_ARGUMENT" and "stage=True" in det
    # The server's: unknown collection, stage with create, versions, dimension, wrong state.
    assert code(client.rollout, "versions_nope", "status")[0] == "NOT_FOUND"
    assert code(client.push, "versions_nope", d1, stage=True)[0] == "NOT_FOUND"
    c, det = code(client.push, name, d1, stage=True, create=True)
    assert c == "INVALID_ARGUMENT" and "stage and create" in det
    client.push(name, d1, create=True)
    c, det = code(client.push, name, d1, stage=True, version=1)
    assert c == "INVALID_ARGUMENT" and "not above" in det
    c, det = code(client.push, name, d16, stage=True)
    assert c == "INVALID_ARGUMENT" and "dim 16" in det
    for action in ("flip", "abort", "rollback", "release"):
        c, det = code(client.rollout, name, action)
        assert c == "FAILED_PRECONDITION" and "only the serving one" in det, action
    assert code(client.search, name, x[:1], k=1, version=2)[0] == "FAILED_PRECONDITION"
    client.push(name, d1, stage=True)
    c, det = code(client.push, name, d1)  # a plain push while a version is staged
    assert c == "FAILED_PRECONDITION" and "holds staged version 2" in det
    c, det = code(client.rollout, name, "flip", version=3)
    assert c == "FAILED_PRECONDITION" and "not the version 3 asked for" in det
    assert code(client.rollout, name, "release")[0] == "FAILED_PRECONDITION"
    assert client.describe(name).staged.version == 2
    client.drop(name)


def test_versions_from_the_wire():
    """VersionInfo and RolloutStatus decoded from messages built here (no server needed)."""
    pb = quiver_client.client.pb
    m = pb.CollectionInfo(name="docs", version=4, versions=[
        pb.VersionInfo(version=3, state="previous", count=10, memory_bytes=640, recall=0.97,
                       recall_k=10, recall_nprobe=8)])
    info = quiver_client.CollectionInfo._from_pb(m)
    assert info.version == 4 and info.staged is None
    assert info.previous == quiver_client.VersionInfo(3, "previous", 10, 640, 0.97, 10, 8)
    st = quiver_client.RolloutStatus._from_pb(pb.RolloutStatus(
        collection="docs", version=5, message="flipped from version 4 to 5",
        versions=[pb.VersionInfo(version=4, state="previous", count=10)]))
    assert (st.version, st.previous.version, st.staged, st.message) == \
        (5, 4, None, "flipped from version 4 to 5")
    # A server without data versions: version 0, nothing beside.
    old = quiver_client.CollectionInfo._from_pb(pb.CollectionInfo(name="docs"))
    assert (old.version, old.versions, old.staged) == (0, (), None)
    r = quiver_client.SearchResult(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32))
    assert r.version == 0


def test_fleet_rollout_fields_from_the_wire_and_a_single_node_refuses_begin(client, tmp_path):
    """A router's RolloutStatus (the fleet rollout and every replica's versions) decoded, and
    rollout_fleet against a single node: UNIMPLEMENTED (begin is a router's), nothing staged."""
    pb = quiver_client.client.pb
    st = quiver_client.RolloutStatus._from_pb(pb.RolloutStatus(
        collection="docs", version=1, state="staging", rollout_version=2, shards=2,
        stage_seq=[7, 9], replicas=[
            pb.ReplicaInfo(shard=0, node="n0", addr="127.0.0.1:1", state="in-sync", version=1,
                           beside_version=2, beside_state="ready", beside_recall=0.98),
            pb.ReplicaInfo(shard=1, node="n2", addr="127.0.0.1:2", state="in-sync", version=1)]))
    assert (st.state, st.rollout_version, st.shards, len(st.replicas)) == ("staging", 2, 2, 2)
    r0, r1 = st.replicas
    assert (r0.version, r0.beside_version, r0.beside_state, r0.beside_recall) == \
        (1, 2, "ready", pytest.approx(0.98))
    assert (r1.beside_version, r1.beside_state, r1.beside_recall) == (0, "", -1.0)
    rng = np.random.default_rng(5)
    x = rng.random((300, 8), dtype=np.float32)
    d = index_dir(tmp_path, "f1", x)
    name = "versions_fleet_single"
    client.push(name, d, create=True)
    with pytest.raises(quiver_client.QuiverError) as e:
        client.rollout_fleet(name, str(tmp_path))
    assert e.value.code.name == "UNIMPLEMENTED" and "router" in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:
        client.rollout_fleet(name)  # neither index_dir nor server_path
    assert e.value.code.name == "INVALID_ARGUMENT"
    assert client.describe(name).staged is None
    client.drop(name)
