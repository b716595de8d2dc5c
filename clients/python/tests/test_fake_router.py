"""The fleet's fields on the wire, without a fleet: an in-process gRPC server answers as a router
would (nodes, replicas, a partial search) and both clients, the Python one and the C one behind the
quiver CLI, must read it; what they send (shards, replicas, allow_partial) is recorded and checked.
The real router is tested with a real fleet elsewhere; this pins the clients' side of the proto."""

from __future__ import annotations

import json
import subprocess
from concurrent import futures

import grpc
import numpy as np
import pytest

import quiver_client
from quiver_client._pb.quiver.v1 import retrieval_pb2 as pb
from quiver_client._pb.quiver.v1 import retrieval_pb2_grpc as pb_grpc

from conftest import BIN_DIR


def _rep(shard, node, state, applied, log, count, version):
    return pb.ReplicaInfo(shard=shard, node=node, addr=f"{node}.quiver-shard:7070", state=state,
                          applied_seq=applied, log_seq=log, count=count, index_version=version)


# What the fake router knows: 2 nodes; "docs", 2 shards x 2 replicas, shard 1 degraded (one
# replica catching up); "lost", 1 shard x 1 replica with no replica at all.
DOCS = pb.CollectionInfo(
    name="docs", dim=4, metric=pb.METRIC_L2, index_spec="Flat",
    state=pb.COLLECTION_STATE_READY, count=300, shards=2, replicas=2,
    placement="fleet: every shard has an in-sync replica",
    replica_info=[_rep(0, "shard-0", "in-sync", 12, 12, 150, 3),
                  _rep(0, "shard-1", "in-sync", 12, 12, 150, 3),
                  _rep(1, "shard-1", "in-sync", 9, 9, 150, 3),
                  _rep(1, "shard-0", "catching-up", 4, 9, 80, 2)])
LOST = pb.CollectionInfo(name="lost", dim=4, metric=pb.METRIC_L2, index_spec="Flat",
                         state=pb.COLLECTION_STATE_NOT_BUILT, shards=1, replicas=1)
NODES = [pb.NodeInfo(id="shard-0", addr="shard-0.quiver-shard:7070", replicas=2),
         pb.NodeInfo(id="shard-1", addr="shard-1.quiver-shard:7070", replicas=3)]
MISSING = [3, 1]


class FakeRouter(pb_grpc.RetrievalServicer):
    def __init__(self):
        self.creates: list[pb.CreateCollectionRequest] = []
        self.searches: list[pb.SearchRequest] = []

    def ListCollections(self, request, context):
        return pb.ListCollectionsResponse(collections=[DOCS, LOST], nodes=NODES)

    def DescribeCollection(self, request, context):
        return DOCS

    def CreateCollection(self, request, context):
        self.creates.append(request)
        return pb.CollectionInfo(name=request.name, dim=request.dim, metric=request.metric,
                                 index_spec="Flat", state=pb.COLLECTION_STATE_READY,
                                 shards=request.shards or 1, replicas=request.replicas or 1)

    def Search(self, request, context):
        self.searches.append(request)
        n = len(request.queries) // request.dim
        k = request.k
        resp = pb.SearchResponse(k=k, num_queries=n, ids=list(range(n * k)),
                                 scores=[float(i) for i in range(n * k)])
        if request.allow_partial:
            resp.missing_shards.extend(MISSING)
        return resp


@pytest.fixture
def router():
    fake = FakeRouter()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RetrievalServicer_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    fake.target = f"127.0.0.1:{port}"
    yield fake
    srv.stop(None)


def _cli(target, *args):
    exe = BIN_DIR / "quiver"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build it or set QUIVER_BIN_DIR", pytrace=False)
    return subprocess.run([str(exe), "--server", target, *args], capture_output=True, text=True,
                          timeout=60)


def test_python_client_reads_the_fleet(router):
    with quiver_client.Client(router.target, timeout=10) as c:
        st = c.cluster_status()
        assert st.fleet
        assert [(n.id, n.replicas) for n in st.nodes] == [("shard-0", 2), ("shard-1", 3)]
        docs, lost = st.collections
        assert (docs.shards, docs.replicas, len(docs.replica_info)) == (2, 2, 4)
        assert (lost.shards, lost.replicas, lost.replica_info) == (1, 1, ())
        behind = st.shard_replicas("docs", 1)[1]
        assert (behind.node, behind.state, behind.lag, behind.count) == \
            ("shard-0", "catching-up", 5, 80)
        assert st.to_dict()["collections"][0]["replica_info"][3]["applied_seq"] == 4

        info = c.create("new", dim=4, shards=4, replicas=2)
        assert (info.shards, info.replicas) == (4, 2)
        assert (router.creates[-1].shards, router.creates[-1].replicas) == (4, 2)

        q = np.zeros((2, 4), np.float32)
        r = c.search("docs", q, k=3, allow_partial=True)
        assert router.searches[-1].allow_partial
        assert r.missing_shards == (3, 1) and r.partial
        ids, scores = r
        assert ids.shape == scores.shape == (2, 3)
        plain = c.search("docs", q, k=3)
        assert not router.searches[-1].allow_partial and plain.missing_shards == ()


def test_cli_cluster_status_text(router):
    p = _cli(router.target, "cluster", "status")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "2 node(s)" in out
    assert "shard-1  shard-1.quiver-shard:7070  3" in out
    assert "docs: 2 shard(s) x 2 replica(s), ready, 300 vectors" in out
    assert "shard 0: 2 of 2 in sync\n" in out
    assert "shard 1: 1 of 2 in sync (degraded)" in out
    assert "lost: 1 shard(s) x 1 replica(s), not built, 0 vectors" in out
    assert "shard 0: 0 of 1 in sync (NOT SERVING)" in out
    row = next(line.split() for line in out.splitlines() if "catching-up" in line)
    assert row == ["shard-0", "catching-up", "4", "9", "5", "80", "2"]  # lag 9 - 4


def test_cli_cluster_status_json(router):
    p = _cli(router.target, "cluster", "status", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["fleet"] is True
    assert st["nodes"][1] == {"id": "shard-1", "addr": "shard-1.quiver-shard:7070", "replicas": 3}
    docs = st["collections"][0]
    assert (docs["name"], docs["shards"], docs["replicas"]) == ("docs", 2, 2)
    s1 = docs["shard_status"][1]
    assert (s1["shard"], s1["in_sync"], s1["wanted"], len(s1["replicas"])) == (1, 1, 2, 2)
    assert s1["replicas"][1] == {"node": "shard-0", "addr": "shard-0.quiver-shard:7070",
                                 "state": "catching-up", "applied_seq": 4, "log_seq": 9,
                                 "lag": 5, "count": 80, "index_version": 2}
    lost = st["collections"][1]
    assert lost["shard_status"] == [{"shard": 0, "in_sync": 0, "wanted": 1, "replicas": []}]


def test_cli_create_describe_and_partial_search(router, tmp_path):
    p = _cli(router.target, "create", "new", "--dim", "4", "--shards", "4", "--replicas", "2")
    assert p.returncode == 0, p.stderr
    assert (router.creates[-1].shards, router.creates[-1].replicas) == (4, 2)
    assert "fleet: 4 shard(s) x 2 replica(s)" in p.stdout
    p = _cli(router.target, "describe", "docs", "--json")
    assert p.returncode == 0, p.stderr
    assert (json.loads(p.stdout)["shards"], json.loads(p.stdout)["replicas"]) == (2, 2)

    qf = tmp_path / "q.fvecs"  # 5 queries of dim 4: each row an int32 dim, then the floats
    rows = np.hstack([np.full((5, 1), 4, "<i4"), np.zeros((5, 4), "<f4").view("<i4")])
    rows.astype("<i4").tofile(qf)
    p = _cli(router.target, "search", "docs", "--queries", str(qf), "--k", "3", "--batch", "2",
             "--allow-partial", "--json")
    assert p.returncode == 0, p.stderr
    assert all(s.allow_partial for s in router.searches[-3:])  # 3 calls of at most 2 queries
    assert json.loads(p.stdout)["missing_shards"] == [1, 3]  # sorted, each once
    assert "partial answer (--allow-partial): 3 of 3 call(s) lacked shard(s) 1, 3" in p.stderr
    p = _cli(router.target, "search", "docs", "--queries", str(qf), "--k", "3", "--json")
    assert p.returncode == 0, p.stderr
    assert not router.searches[-1].allow_partial
    assert json.loads(p.stdout)["missing_shards"] == [] and "partial" not in p.stderr
