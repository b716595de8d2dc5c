"""The client's calls on small generated collections (no data set needed)."""

from __future__ import annotations

import dataclasses
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
