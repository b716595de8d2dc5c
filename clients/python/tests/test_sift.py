"""sift5k end to end through the Python client: create, upsert, build, search; against the C CLI."""

from __future__ import annotations

import subprocess

import grpc
import numpy as np
import pytest

import quiver_client
from conftest import BIN_DIR, recall_at_k


def test_load_and_build(sift_collection, sift):
    c = sift_collection
    assert c.created.state == "not_built"
    assert c.count == len(sift.base)
    assert c.built.state == "ready"
    assert c.built.indexed == len(sift.base)
    assert c.built.index_version == 1
    assert c.built.nlist == 64
    phases = [p for p, _, _ in c.progress]
    assert phases and phases[-1] == "done"
    assert set(phases) <= {"queued", "sample", "train", "add", "evaluate", "tune", "save", "done"}
    assert all(isinstance(d, int) and isinstance(t, int) for _, d, t in c.progress)


def test_recall_at_nprobe_32(client, sift_collection, sift):
    ids, scores = client.search(sift_collection.name, sift.queries, k=10, nprobe=32)
    assert ids.shape == scores.shape == (len(sift.queries), 10)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert (np.diff(scores, axis=1) >= 0).all(), "l2 scores must ascend within a row"
    r = recall_at_k(ids, sift.gt, 10)
    assert r >= 0.95, f"recall@10 at nprobe 32 is {r:.4f}"


def test_exact_search_is_the_reference(client, sift_collection, sift):
    ids, _ = client.search(sift_collection.name, sift.queries, k=10, exact=True)
    r = recall_at_k(ids, sift.gt, 10)
    assert r >= 0.99, f"exact recall@10 is {r:.4f}"


def test_nprobe_default_and_one_query(client, sift_collection, sift):
    name = sift_collection.name
    ids16, _ = client.search(name, sift.queries[:20], k=10, nprobe=16)
    ids0, _ = client.search(name, sift.queries[:20], k=10)  # the collection's default: 16
    np.testing.assert_array_equal(ids0, ids16)
    one, s1 = client.search(name, sift.queries[3], k=10)  # 1-D: one query
    assert one.shape == s1.shape == (1, 10)
    np.testing.assert_array_equal(one[0], ids16[3])


def _cli(*args, cwd=None):
    return subprocess.run([str(BIN_DIR / "quiver"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_same_ids_as_the_offline_cli(client, server, sift_collection, sift, tmp_path):
    """The C CLI's offline search over the collection the server saved gives the same top-10."""
    # TODO: once test_same_ids_as_the_remote_cli runs everywhere, this one can go (or stay as a
    # check that the saved collection answers like the live one).
    out = tmp_path / "offline.npy"
    index_dir = server.data_dir / "collections" / sift_collection.name
    p = _cli("index", "search", "--index", str(index_dir), "--queries", str(sift.query_file),
             "--k", "10", "--nprobe", "32", "--output", str(out))
    assert p.returncode == 0, f"quiver index search failed ({p.returncode}):\n{p.stderr}"
    ids, _ = client.search(sift_collection.name, sift.queries, k=10, nprobe=32)
    np.testing.assert_array_equal(ids, np.load(out))


def test_same_ids_as_the_remote_cli(client, server, sift_collection, sift, tmp_path):
    """`quiver --server HOST:PORT search NAME ...` over gRPC gives the same top-10 as Python."""
    usage = _cli("--help")
    if "--server" not in usage.stdout + usage.stderr:
        # TODO: the CLI's remote commands are being written; this test runs once they exist.
        pytest.skip("this quiver CLI has no --server commands yet "
                    "(test_same_ids_as_the_offline_cli covers the comparison meanwhile)")
    out = tmp_path / "remote.npy"
    p = _cli("--server", server.target, "search", sift_collection.name, "--queries",
             str(sift.query_file), "--k", "10", "--nprobe", "32", "--output", str(out))
    assert p.returncode == 0, f"quiver --server ... search failed ({p.returncode}):\n{p.stderr}"
    ids, _ = client.search(sift_collection.name, sift.queries, k=10, nprobe=32)
    np.testing.assert_array_equal(ids, np.load(out))


def test_rerank_filters_and_mmr(client, sift_collection, sift):
    name = sift_collection.name
    base_ids, _ = client.search(name, sift.queries[:5], k=10, nprobe=32)
    deny = base_ids[:, 0].tolist()  # every query's best
    ids, scores = client.search(name, sift.queries[:5], k=10, nprobe=32,
                                rerank={"candidates": 50, "refine": True, "deny_ids": deny})
    assert ids.shape == (5, 10)
    assert not set(ids.ravel().tolist()) & set(deny)
    assert (np.diff(scores, axis=1) >= 0).all(), "refined l2 scores still ascend"
    allow = [int(base_ids[0, 8]), int(base_ids[0, 3]), int(base_ids[0, 5])]
    ids, _ = client.search(name, sift.queries[:1], k=3, nprobe=64,
                           rerank={"candidates": 4096, "allow_ids": allow})
    assert sorted(ids[0].tolist()) == sorted(allow)
    with pytest.raises(quiver_client.QuiverError) as err:  # above the server's --max-candidates
        client.search(name, sift.queries[:1], k=3, rerank={"candidates": 4097})
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "--max-candidates" in str(err.value)
    ids, _ = client.search(name, sift.queries[:1], k=5, nprobe=32,
                           rerank={"candidates": 50, "refine": True, "mmr_lambda": 0.5})
    assert len(set(ids[0].tolist())) == 5
    assert ids[0, 0] == base_ids[0, 0]  # MMR's first pick is the most relevant


def test_rerank_refusals(client, sift_collection, sift):
    from quiver_client import QuiverError
    import grpc

    name = sift_collection.name
    with pytest.raises(QuiverError) as ei:  # sift items carry no features
        client.search(name, sift.queries[:1], rerank={"weights": [1.0, 2.0]})
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "carry 0 features" in str(ei.value)
    with pytest.raises(QuiverError) as ei:
        client.search(name, sift.queries[:1], rerank={"mmr_lambda": 3.0})
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(QuiverError) as ei:
        client.search(name, sift.queries[:1], rerank={"bogus": 1})
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_item_features_feed_the_blend(client, sift):
    name = "items_py"
    info = client.create(name, dim=128, spec="IVF16,Flat", n_features=1)
    assert info.n_features == 1
    n = 2000
    pop = (np.arange(n) % 97).astype(np.float32).reshape(n, 1)
    client.upsert(name, np.arange(n), sift.base[:n], features=pop, chunk_bytes=64 << 10)
    client.build(name)
    ids, scores = client.search(name, sift.queries[:1], k=10, nprobe=16,
                                rerank={"candidates": 300, "refine": True, "weights": [0.0, 1.0]})
    np.testing.assert_array_equal(scores[0], (ids[0] % 97).astype(np.float32))
    assert (np.diff(scores[0]) <= 0).all()
    client.drop(name)
