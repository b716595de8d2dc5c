"""Fetch by ids (Client.get) and item-to-item search (search(query_ids=...)) against the real
quiverd: numpy out, the field mask, unknown ids, and the bad inputs a caller can make."""

from __future__ import annotations

import numpy as np
import pytest

import quiver_client


@pytest.fixture(scope="module")
def items(client, sift):
    """The first 1000 sift5k rows, ids 0.., two features each, Flat (exact answers)."""
    name = "items_py"
    client.create(name, dim=128, metric="l2", spec="Flat", n_features=2)
    feats = (np.arange(2000, dtype=np.float32).reshape(1000, 2) % 13) * 0.5
    client.upsert(name, np.arange(1000), sift.base[:1000], features=feats)
    yield name, sift.base[:1000], feats
    client.drop(name)


def test_get_returns_numpy_rows_in_request_order_and_the_missing_ids(client, items):
    name, base, feats = items
    got = client.get(name, [3, 999999, 7, 3])
    assert isinstance(got, quiver_client.Items)
    assert got.ids.dtype == np.int64 and got.ids.tolist() == [3, 7, 3]
    assert got.vectors.dtype == np.float32 and got.vectors.shape == (3, 128)
    np.testing.assert_array_equal(got.vectors, base[[3, 7, 3]])
    np.testing.assert_array_equal(got.features, feats[[3, 7, 3]])
    assert got.missing_ids.tolist() == [999999]
    assert len(got) == 3
    only = client.get(name, np.array([5], dtype=np.int32), fields=["features"])
    assert only.vectors is None
    np.testing.assert_array_equal(only.features, feats[[5]])
    only = client.get(name, [5], fields="vector")
    assert only.features is None and only.vectors.shape == (1, 128)


def test_get_refuses_bad_input(client, items):
    name = items[0]
    with pytest.raises(quiver_client.QuiverError) as e:
        client.get(name, [1], fields=["colour"])
    assert e.value.code.name == "INVALID_ARGUMENT" and "'colour' is not a field" in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:
        client.get(name, [1, -4])
    assert e.value.code.name == "INVALID_ARGUMENT" and "ids[1] = -4 is negative" in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:
        client.get(name, ["a", "b"])  # ids of the wrong type: refused before the call
    assert e.value.code.name == "INVALID_ARGUMENT" and "integers" in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:
        client.get(name, [1.5])
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(quiver_client.QuiverError) as e:
        client.get("no_such_collection", [1])
    assert e.value.code.name == "NOT_FOUND"


def test_item_to_item_search_leaves_the_item_out(client, items):
    name, base, _ = items
    qids = np.array([0, 5, 123456, 42])
    r = client.search(name, query_ids=qids, k=10)
    assert r.ids.shape == (4, 10) and r.unknown_queries == (2,)
    assert (r.ids[2] == -1).all() and np.isinf(r.scores[2]).all()
    for row, i in ((0, 0), (1, 5), (3, 42)):
        exact = client.search(name, base[i], k=11, exact=True)
        want = [x for x in exact.ids[0] if x != i][:10]
        assert r.ids[row].tolist() == want
    with_self = client.search(name, query_ids=[42], k=3, include_self=True)
    assert with_self.ids[0, 0] == 42 and with_self.scores[0, 0] == 0.0


def test_item_to_item_search_refuses_bad_input(client, items):
    name, base, _ = items
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, query_ids=[777777, 888888])
    assert e.value.code.name == "NOT_FOUND" and "none of the 2 query_ids" in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, base[0], query_ids=[1])
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, base[0], include_self=True)
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, query_ids=["x"])
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(quiver_client.QuiverError) as e:
        client.search(name, query_ids=[3, -1])
    assert e.value.code.name == "INVALID_ARGUMENT" and "is negative" in e.value.details


def test_an_hnsw_collection_takes_ef_search(client, sift):
    info = client.create("graph_py", dim=128, spec="HNSW16", default_ef_search=32)
    try:
        assert info.default_ef_search == 32 and info.default_nprobe == 0
        client.upsert("graph_py", np.arange(len(sift.base)), sift.base)
        lo = client.search("graph_py", sift.queries, k=10, ef_search=8)
        hi = client.search("graph_py", sift.queries, k=10, ef_search=512)
        gt = sift.gt[:, :10]

        def rec(r):
            return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r.ids, gt)])
        assert rec(hi) >= 0.95 and rec(lo) < rec(hi)
        with pytest.raises(quiver_client.QuiverError) as e:
            client.search("graph_py", sift.queries[0], nprobe=4)
        assert e.value.code.name == "INVALID_ARGUMENT" and "ef_search" in e.value.details
        with pytest.raises(quiver_client.QuiverError) as e:
            client.create("graph_gpu", dim=8, spec="HNSW16", device="gpu")
        assert e.value.code.name == "INVALID_ARGUMENT" and "GPU" in e.value.details
    finally:
        client.drop("graph_py")
