"""The client's calls on small generated collections (no data set needed)."""

from __future__ import annotations

import dataclasses
import pickle
import time

import numpy as np
import pytest

import quiver_client


def rand(n, d, seed):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


def test_health(client):
    assert client.health() is True
    assert client.health("quiver.v1.Retrieval") is True


def test_context_manager_and_repr(server):
    with quiver_client.Client(server.target, timeout=5) as c:
        assert c.health()
        assert server.target in repr(c)


def test_create_describe_list_drop(client):
    created = client.create("meta_ivf", dim=8, metric="ip", spec="IVF4,Flat", default_nprobe=2,
                            train_sample=500)
    assert isinstance(created, quiver_client.CollectionInfo)
    assert (created.name, created.dim, created.metric, created.index_spec) == \
        ("meta_ivf", 8, "ip", "IVF4,Flat")
    assert (created.state, created.default_nprobe, created.count, created.indexed) == \
        ("not_built", 2, 0, 0)
    assert created.nlist == 4 and created.index_version == 0
    flat = client.create("meta_flat", dim=3, metric="cosine")
    assert (flat.index_spec, flat.metric, flat.nlist) == ("Flat", "cosine", 0)
    assert flat.default_nprobe == 16  # 0 asks for the server's default

    x = rand(600, 8, 1)
    assert client.upsert("meta_ivf", np.arange(600), x) == 600
    d = client.describe("meta_ivf")
    assert (d.count, d.indexed, d.state) == (600, 0, "not_built")
    assert d.vector_bytes >= 600 * 8 * 4

    built = client.build("meta_ivf")
    assert (built.state, built.count, built.indexed, built.index_version) == ("ready", 600, 600, 1)
    assert built.memory_bytes == built.vector_bytes + built.index_bytes
    assert client.describe("meta_ivf") == built
    assert client.build("meta_ivf").index_version == 2

    as_dict = built.to_dict()
    assert as_dict["name"] == "meta_ivf" and as_dict["count"] == 600
    assert set(as_dict) == {f.name for f in dataclasses.fields(quiver_client.CollectionInfo)}

    listed = client.list()
    names = [c.name for c in listed]
    assert names == sorted(names)
    assert {"meta_ivf", "meta_flat"} <= set(names)
    assert next(c for c in listed if c.name == "meta_ivf").index_version == 2

    client.drop("meta_flat")
    assert "meta_flat" not in [c.name for c in client.list()]
    with pytest.raises(quiver_client.QuiverError) as e:
        client.describe("meta_flat")
    assert e.value.code.name == "NOT_FOUND"
    client.drop("meta_ivf")


def test_upsert_chunks_replace_and_search(client):
    x = rand(1000, 16, 2)
    client.create("chunks", dim=16)
    # ~10 vectors per message: 100 messages in one stream.
    assert client.upsert("chunks", np.arange(1000), x, chunk_bytes=10 * (16 * 4 + 8)) == 1000
    ids, scores = client.search("chunks", x[:5], k=3)
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))
    np.testing.assert_allclose(scores[:, 0], 0, atol=1e-4)
    # Existing ids are replaced: vector 0 moves to where 999 is.
    assert client.upsert("chunks", [0], x[999:1000]) == 1000
    ids, _ = client.search("chunks", x[999], k=2)
    assert sorted(ids[0].tolist()) == [0, 999]
    # Python lists and float64 go in too.
    assert client.upsert("chunks", [5000], x[0].astype(np.float64).tolist()) == 1001
    client.drop("chunks")


def test_delete(client):
    x = rand(100, 4, 3)
    client.create("del", dim=4)
    client.upsert("del", np.arange(100), x)
    assert client.delete("del", [1, 2, 3, 12345]) == (3, 97)
    assert client.delete("del", np.array([2])) == (0, 97)
    ids, _ = client.search("del", x[1:4], k=5, exact=True)
    assert not np.isin(ids, [1, 2, 3]).any()
    assert client.describe("del").count == 97
    client.drop("del")


def test_padding_when_fewer_than_k(client):
    client.create("pad_l2", dim=2)
    client.upsert("pad_l2", [10, 20], [[0, 0], [1, 0]])
    ids, scores = client.search("pad_l2", [[0.1, 0]], k=4)
    np.testing.assert_array_equal(ids, [[10, 20, -1, -1]])
    assert np.isinf(scores[0, 2:]).all() and (scores[0, 2:] > 0).all()
    client.create("pad_ip", dim=2, metric="ip")
    client.upsert("pad_ip", [1], [[1, 1]])
    ids, scores = client.search("pad_ip", [[1, 0]], k=2)
    np.testing.assert_array_equal(ids, [[1, -1]])
    assert scores[0, 1] == -np.inf
    client.drop("pad_l2")
    client.drop("pad_ip")


def test_cosine_scores(client):
    client.create("cos", dim=3, metric="cosine")
    client.upsert("cos", [1, 2, 3], [[2, 0, 0], [0, 5, 0], [1, 1, 0]])
    ids, scores = client.search("cos", [10, 0, 0], k=3)
    np.testing.assert_array_equal(ids, [[1, 3, 2]])  # descending similarity
    np.testing.assert_allclose(scores[0], [1, np.sqrt(0.5), 0], atol=1e-5)
    client.drop("cos")


def test_build_progress_callback_and_cancel(client):
    client.create("prog", dim=8, spec="IVF8,Flat")
    client.upsert("prog", np.arange(2000), rand(2000, 8, 4))
    seen = []
    info = client.build("prog", progress=lambda phase, done, total: seen.append(phase))
    # The server sends the newest progress only (phases may be skipped), but always ends on "done".
    assert seen[-1] == "done"
    assert info.index_version == 1

    class Stop(Exception):
        pass

    def stop(phase, done, total):
        raise Stop(phase)

    with pytest.raises(Stop):
        client.build("prog", progress=stop)
    # The cancelled build stops at its next progress point (or finished first: it is small);
    # either way the collection stays searchable and the server keeps answering.
    deadline = time.monotonic() + 30
    while (info := client.describe("prog")).state == "building" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert info.state == "ready" and info.index_version in (1, 2)
    ids, _ = client.search("prog", rand(1, 8, 5), k=1)
    assert ids[0, 0] >= 0
    client.drop("prog")


def test_device_and_deferred_deletes(client):
    """Placement is reported; on this server (no GPU) every collection serves from the CPU."""
    g = client.create("dev_gpu", dim=4, device="gpu", deferred_deletes=True)
    assert (g.device, g.deferred_deletes) == ("gpu", True)
    assert g.gpu == -1 and g.device_bytes == 0 and g.placement.startswith("cpu: "), g
    c = client.create("dev_default", dim=4)
    assert c.device == "auto" and c.deferred_deletes is False  # the server's --device default
    with pytest.raises(quiver_client.QuiverError) as err:
        client.create("dev_bad", dim=4, device="tpu")
    assert "unknown device" in str(err.value)
    # Deferred deletes: the deleted id is hidden at once and counted as a tombstone.
    x = rand(50, 4, 3)
    client.upsert("dev_gpu", np.arange(50), x)
    deleted, count = client.delete("dev_gpu", [0, 1, 2])
    assert (deleted, count) == (3, 47)
    ids, _ = client.search("dev_gpu", x[:3], k=3)
    assert not set(ids.ravel().tolist()) & {0, 1, 2}
    client.drop("dev_gpu")
    client.drop("dev_default")


def test_build_recall_floor_target_and_push(client, server):
    client.create("life", dim=16, spec="IVF8,Flat")
    client.upsert("life", np.arange(2000), rand(2000, 16, 7))
    tuned = client.build("life", target_recall=0.9, eval_queries=300)
    assert 0.9 <= tuned.build_recall <= 1.0 and tuned.build_recall_k == 10
    assert tuned.default_nprobe == tuned.build_recall_nprobe
    assert 1 <= tuned.default_nprobe <= 8
    with pytest.raises(quiver_client.QuiverError) as e:
        client.build("life", recall_floor=1.0, eval_queries=300, eval_k=50)
    assert e.value.code.name == "FAILED_PRECONDITION" and "below the floor" in e.value.details
    assert client.describe("life").index_version == tuned.index_version  # the old index stays

    # The server's own collection directory is an index directory: push it into a new name.
    src = server.data_dir / "collections" / "life"
    info, recall = client.push("life_copy", str(src), create=True, chunk_bytes=64 * 1024)
    assert (info.count, info.index_spec, info.state) == (2000, "IVF8,Flat", "ready")
    assert 0.5 < recall <= 1.0 and info.build_recall == pytest.approx(recall)
    ids, _ = client.search("life_copy", rand(1, 16, 7)[:1], k=1, nprobe=8)
    assert ids.shape == (1, 1)
    with pytest.raises(quiver_client.QuiverError) as e:
        client.push("nowhere", str(src))  # no create: unknown collection
    assert e.value.code.name == "NOT_FOUND"
    with pytest.raises(quiver_client.QuiverError) as e:
        client.push("life", server_path=str(src))  # quiverd has no --import-root here
    assert e.value.code.name == "FAILED_PRECONDITION" and "--import-root" in e.value.details

    # A chunk whose CRC-32 does not match what it carries: DATA_LOSS, nothing swapped.
    bad = quiver_client.client.pb.ImportIndexRequest(collection="life", file="MANIFEST.json",
                                                     data=b"{}", crc32=12345)
    with pytest.raises(Exception) as e:
        client._stub.ImportIndex(iter([bad]), timeout=10)
    assert "DATA_LOSS" in str(e.value)
    assert client.describe("life").index_version == tuned.index_version


def test_fleet_fields_on_a_single_node(client):
    """shards/replicas above 1 need a router; a single node's collections read as 1 shard of 1
    replica, its cluster status has no nodes, and allow_partial changes nothing."""
    for kw, shown in (({"shards": 2}, "shards = 2"), ({"replicas": 3}, "replicas = 3")):
        with pytest.raises(quiver_client.QuiverError) as e:
            client.create("fleet_split", dim=4, **kw)
        assert e.value.code.name == "INVALID_ARGUMENT"
        assert "needs a fleet" in e.value.details and shown in e.value.details
    with pytest.raises(quiver_client.QuiverError) as e:  # uint32: refused before any call
        client.create("fleet_split", dim=4, shards=-1)
    assert e.value.code.name == "INVALID_ARGUMENT"
    assert "fleet_split" not in [c.name for c in client.list()]

    created = client.create("fleet_one", dim=4, shards=1, replicas=1)
    assert (created.shards, created.replicas, created.replica_info) == (1, 1, ())
    d = client.describe("fleet_one")
    assert (d.shards, d.replicas, d.replica_info) == (1, 1, ())
    assert d.to_dict()["shards"] == 1 and d.to_dict()["replica_info"] == ()

    x = rand(50, 4, 7)
    client.upsert("fleet_one", np.arange(50), x)
    plain_ids, plain_scores = client.search("fleet_one", x[:3], k=5)
    r = client.search("fleet_one", x[:3], k=5, allow_partial=True)
    assert isinstance(r, quiver_client.SearchResult) and isinstance(r, tuple) and len(r) == 2
    ids, scores = r
    assert ids is r.ids and scores is r.scores
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(scores, plain_scores)
    assert r.missing_shards == () and not r.partial
    again = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(again.ids, ids)
    assert again.missing_shards == ()

    st = client.cluster_status()
    assert isinstance(st, quiver_client.ClusterStatus)
    assert st.nodes == () and not st.fleet
    one = next(c for c in st.collections if c.name == "fleet_one")
    assert (one.shards, one.replicas, one.replica_info, one.count) == (1, 1, (), 50)
    assert st.shard_replicas("fleet_one", 0) == []
    with pytest.raises(KeyError):
        st.shard_replicas("fleet_nope", 0)
    as_dict = st.to_dict()
    assert as_dict["nodes"] == () and "fleet_one" in [c["name"] for c in as_dict["collections"]]
    client.drop("fleet_one")


def test_replica_and_node_info_from_the_wire():
    """What a router sends, decoded (no fleet needed: the messages are built here)."""
    pb = quiver_client.client.pb
    m = pb.CollectionInfo(name="docs", shards=2, replicas=2, replica_info=[
        pb.ReplicaInfo(shard=0, node="a", addr="10.0.0.1:7070", state="in-sync", applied_seq=9,
                       log_seq=9, count=100, index_version=2),
        pb.ReplicaInfo(shard=1, node="b", addr="10.0.0.2:7070", state="catching-up",
                       applied_seq=5, log_seq=9, count=90, index_version=1)])
    info = quiver_client.CollectionInfo._from_pb(m)
    assert (info.shards, info.replicas, len(info.replica_info)) == (2, 2, 2)
    a, b = info.replica_info
    assert (a.node, a.state, a.lag, b.state, b.lag) == ("a", "in-sync", 0, "catching-up", 4)
    assert quiver_client.ReplicaInfo(0, "n", "x", "loading", 7, 3, 0, 0).lag == 0  # stale log_seq
    st = quiver_client.ClusterStatus(
        nodes=(quiver_client.NodeInfo._from_pb(pb.NodeInfo(id="a", addr="10.0.0.1:7070",
                                                           replicas=3)),),
        collections=(info,))
    assert st.fleet and st.nodes[0].replicas == 3
    assert [r.node for r in st.shard_replicas("docs", 1)] == ["b"]
    r = quiver_client.SearchResult(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32),
                                   [3, 1])
    assert r.missing_shards == (3, 1) and r.partial
