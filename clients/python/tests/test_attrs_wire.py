"""Item attributes and filters on the wire, without quiverd: an in-process gRPC server with a fixed
schema records what the clients send (the schema at create, attribute columns split over an
upsert stream, filter and filter_path) and answers describe and get with attributes; both the
Python client and the C one behind the quiver CLI must write and read them. test_attrs.py checks
the same against the real server (filters evaluated, brute force compared)."""

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

S = grpc.StatusCode
SCHEMA = [("category", pb.ATTRIBUTE_INT64), ("price", pb.ATTRIBUTE_FLOAT),
          ("sold_out", pb.ATTRIBUTE_BOOL), ("brand", pb.ATTRIBUTE_KEYWORD),
          ("tags", pb.ATTRIBUTE_TAGS)]
LISTS = {pb.ATTRIBUTE_INT64: "ints", pb.ATTRIBUTE_FLOAT: "floats", pb.ATTRIBUTE_BOOL: "bools",
         pb.ATTRIBUTE_KEYWORD: "keywords", pb.ATTRIBUTE_TAGS: "tags"}
DEFAULTS = {"ints": 0, "floats": 0.0, "bools": False, "keywords": "", "tags": []}


def _value(col, field, i):
    v = getattr(col, field)[i]
    return list(v.tags) if field == "tags" else v


class FakeServer(pb_grpc.RetrievalServicer):
    """One collection "shop" (dim 4) with SCHEMA; "plain" without attributes."""

    def __init__(self):
        self.creates: list = []
        self.searches: list = []
        self.streams: list = []  # the messages of each Upsert
        self.gets: list = []
        self.items: dict = {}  # id -> {name: value}

    def _info(self, name):
        attrs = [pb.AttributeField(name=n, type=t) for n, t in SCHEMA] if name == "shop" else []
        return pb.CollectionInfo(name=name, dim=4, metric=pb.METRIC_L2, index_spec="Flat",
                                 state=pb.COLLECTION_STATE_READY, count=len(self.items),
                                 attributes=attrs, attribute_bytes=4096 if attrs else 0)

    def CreateCollection(self, request, context):
        self.creates.append(request)
        info = self._info(request.name)
        del info.attributes[:]
        info.attributes.extend(request.attributes)
        return info

    def DescribeCollection(self, request, context):
        return self._info(request.name)

    def Upsert(self, request_iterator, context):
        msgs = list(request_iterator)
        self.streams.append(msgs)
        types = dict(SCHEMA)
        for m in msgs:
            for col in m.attributes:
                if col.name not in types:
                    context.abort(S.INVALID_ARGUMENT, f"attribute column '{col.name}': no such "
                                  "attribute")
                field = LISTS[types[col.name]]
                if len(getattr(col, field)) != len(m.ids):
                    context.abort(S.INVALID_ARGUMENT, f"attribute column '{col.name}': "
                                  f"{len(getattr(col, field))} values for {len(m.ids)} ids")
            for i, id_ in enumerate(m.ids):
                self.items[id_] = {c.name: _value(c, LISTS[types[c.name]], i)
                                   for c in m.attributes}
        return pb.UpsertResponse(count=len(self.items))

    def Get(self, request, context):
        self.gets.append(request)
        found = [i for i in request.ids if i in self.items]
        resp = pb.GetResponse(ids=found, missing_ids=[i for i in request.ids
                                                      if i not in self.items], dim=4)
        if not request.fields or "vector" in request.fields:
            resp.vectors.extend([0.0] * (4 * len(found)))
        if not request.fields or "attributes" in request.fields:
            for name, t in SCHEMA:
                col = resp.attributes.add(name=name)
                field = LISTS[t]
                for i in found:
                    v = self.items[i].get(name, DEFAULTS[field])
                    if field == "tags":
                        col.tags.add().tags.extend(v)
                    else:
                        getattr(col, field).append(v)
        return resp

    def Search(self, request, context):
        self.searches.append(request)
        n = max(len(request.queries) // max(request.dim, 1), len(request.query_ids))
        return pb.SearchResponse(k=request.k, num_queries=n, ids=[-1] * (n * request.k),
                                 scores=[0.0] * (n * request.k))


@pytest.fixture
def fake():
    f = FakeServer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RetrievalServicer_to_server(f, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    f.target = f"127.0.0.1:{port}"
    yield f
    srv.stop(None)


def _cli(target, *args):
    exe = BIN_DIR / "quiver"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build it or set QUIVER_BIN_DIR", pytrace=False)
    return subprocess.run([str(exe), "--server", target, *args], capture_output=True, text=True,
                          timeout=60)


def _expect(code, fn, *args, match="", **kwargs):
    with pytest.raises(quiver_client.QuiverError) as e:
        fn(*args, **kwargs)
    assert e.value.code == code, str(e.value)
    assert match in e.value.details, e.value.details
    return e.value


ROWS = 7
ATTRS = {
    "category": np.array([3, 7, 3, 1, 0, 9, 7]),
    "price": [9.5, 20, 0.25, 1e10, -3.0, 2.5, 19.99],
    "sold_out": np.array([False, True, False, False, True, False, True]),
    "brand": ["acme", "", "zeta", "acme", "ünï \"q\"", "b", "acme"],
    "tags": [["summer", "sale"], [], ["winter"], ["a", "b", "c"], [], ["sale"], ["summer"]],
}


# ---- the Python client ---------------------------------------------------------------------

def test_create_sends_the_schema_and_describe_reads_it(fake):
    with quiver_client.Client(fake.target, timeout=10) as c:
        info = c.create("shop", dim=4, attributes=[("category", "int64"), ("price", "FLOAT"),
                                                   ("tags", "tags")])
        sent = fake.creates[-1].attributes
        assert [(a.name, a.type) for a in sent] == [("category", pb.ATTRIBUTE_INT64),
                                                    ("price", pb.ATTRIBUTE_FLOAT),
                                                    ("tags", pb.ATTRIBUTE_TAGS)]
        assert info.attributes == (("category", "int64"), ("price", "float"), ("tags", "tags"))
        c.create("shop", dim=4, attributes={"sold_out": "bool", "brand": "keyword"})
        assert [a.name for a in fake.creates[-1].attributes] == ["sold_out", "brand"]
        c.create("plain", dim=4)
        assert len(fake.creates[-1].attributes) == 0
        n = len(fake.creates)
        _expect(S.INVALID_ARGUMENT, c.create, "shop", dim=4, attributes=[("a", "string")],
                match="unknown type 'string'")
        _expect(S.INVALID_ARGUMENT, c.create, "shop", dim=4, attributes=["category"])
        assert len(fake.creates) == n  # refused before any call

        d = c.describe("shop")
        assert d.attributes == (("category", "int64"), ("price", "float"), ("sold_out", "bool"),
                                ("brand", "keyword"), ("tags", "tags"))
        assert d.schema["brand"] == "keyword" and d.attribute_bytes == 4096
        assert d.to_dict()["attributes"][0] == ("category", "int64")
        assert c.describe("plain").attributes == ()


def test_upsert_splits_the_columns_with_the_rows(fake):
    with quiver_client.Client(fake.target, timeout=10) as c:
        vecs = np.ones((ROWS, 4), np.float32)
        # About two rows per message: the columns must be cut at the same rows as the ids.
        assert c.upsert("shop", np.arange(ROWS), vecs, chunk_bytes=2 * (16 + 8 + 60),
                        attributes=ATTRS) == ROWS
        msgs = fake.streams[-1]
        assert len(msgs) > 2
        for m in msgs:
            assert sorted(col.name for col in m.attributes) == sorted(ATTRS)
        got = fake.items
        for i in range(ROWS):
            assert got[i]["category"] == ATTRS["category"][i]
            assert got[i]["price"] == float(ATTRS["price"][i])
            assert got[i]["sold_out"] == ATTRS["sold_out"][i]
            assert got[i]["brand"] == ATTRS["brand"][i]
            assert got[i]["tags"] == ATTRS["tags"][i]
        # A subset: the others are not sent (the server gives them their defaults).
        c.upsert("shop", [100], np.ones((1, 4), np.float32), attributes={"price": [1.5]})
        assert [col.name for col in fake.streams[-1][0].attributes] == ["price"]
        assert list(fake.streams[-1][0].attributes[0].floats) == [1.5]
        # Integers for a float attribute are numbers: sent as floats.
        c.upsert("shop", [101], np.ones((1, 4), np.float32), attributes={"price": [2]})
        assert list(fake.streams[-1][0].attributes[0].floats) == [2.0]
        # No attributes: no describe, no columns.
        c.upsert("plain", [1], np.ones((1, 4), np.float32))
        assert len(fake.streams[-1][0].attributes) == 0


def test_upsert_refuses_bad_columns_before_any_write(fake):
    with quiver_client.Client(fake.target, timeout=10) as c:
        v = np.ones((2, 4), np.float32)
        cases = [
            ({"colour": [1, 2]}, "unknown attribute 'colour'"),
            ({"category": ["a", "b"]}, "attributes['category'] (int64) must be integers"),
            ({"category": [1.5, 2]}, "must be integers"),
            ({"category": [1, 2, 3]}, "shape (3,) for 2 ids"),
            ({"price": ["x", "y"]}, "attributes['price'] (float) must be numbers"),
            ({"price": [1.0, float("nan")]}, "row 1 is not finite"),
            ({"sold_out": [1, 0]}, "must be booleans"),
            ({"brand": [1, 2]}, "attributes['brand'] (keyword)[0] must be a str"),
            ({"brand": "ab"}, "not a single string"),
            ({"brand": ["a"]}, "1 values for 2 ids"),
            ({"tags": ["a", "b"]}, "not a single string"),
            ({"tags": [["a"], [3]]}, "attributes['tags'] (tags)[1][0] must be a str"),
        ]
        n = len(fake.streams)
        for attrs, needle in cases:
            _expect(S.INVALID_ARGUMENT, c.upsert, "shop", [1, 2], v, attributes=attrs,
                    match=needle)
        _expect(S.FAILED_PRECONDITION, c.upsert, "plain", [1, 2], v,
                attributes={"category": [1, 2]}, match="has no attributes")
        assert len(fake.streams) == n


def test_get_returns_the_attributes_as_numpy_and_lists(fake):
    with quiver_client.Client(fake.target, timeout=10) as c:
        c.upsert("shop", np.arange(ROWS), np.ones((ROWS, 4), np.float32), attributes=ATTRS)
        it = c.get("shop", [3, 999, 0, 3])
        assert it.ids.tolist() == [3, 0, 3] and it.missing_ids.tolist() == [999]
        a = it.attributes
        assert list(a) == ["category", "price", "sold_out", "brand", "tags"]  # schema order
        assert a["category"].dtype == np.int64 and a["category"].tolist() == [1, 3, 1]
        assert a["price"].dtype == np.float64 and a["price"].tolist() == [1e10, 9.5, 1e10]
        assert a["sold_out"].dtype == bool and a["sold_out"].tolist() == [False, False, False]
        assert a["brand"] == ["acme", "acme", "acme"]
        assert a["tags"] == [["a", "b", "c"], ["summer", "sale"], ["a", "b", "c"]]
        only = c.get("shop", [1], fields=["attributes"])
        assert list(fake.gets[-1].fields) == ["attributes"]
        assert only.vectors is None and only.features is None
        assert only.attributes["tags"] == [[]] and only.attributes["brand"] == [""]
        assert c.get("shop", [1], fields=["vector"]).attributes is None
        none = c.get("shop", [12345])  # no rows: the schema gives the empty columns' types
        assert none.attributes["price"].dtype == np.float64 and len(none.attributes["price"]) == 0
        assert none.attributes["tags"] == []


def test_search_sends_the_filter_and_its_path(fake):
    with quiver_client.Client(fake.target, timeout=10) as c:
        q = np.zeros((2, 4), np.float32)
        expr = 'category in (3, 7) and price < 20 and not sold_out and tags has "summer"'
        c.search("shop", q, k=3, filter=expr)
        assert fake.searches[-1].filter == expr
        assert fake.searches[-1].filter_path == pb.FILTER_PATH_AUTO
        c.search("shop", q, k=3, filter=expr, filter_path="exact")
        assert fake.searches[-1].filter_path == pb.FILTER_PATH_EXACT
        c.search("shop", query_ids=[1, 2], k=3, filter="sold_out", filter_path="INDEX")
        assert (fake.searches[-1].filter, fake.searches[-1].filter_path) == \
            ("sold_out", pb.FILTER_PATH_INDEX)
        c.search("shop", q, k=3)
        assert fake.searches[-1].filter == ""
        n = len(fake.searches)
        _expect(S.INVALID_ARGUMENT, c.search, "shop", q, filter="x", filter_path="fast",
                match="unknown filter_path 'fast'")
        _expect(S.INVALID_ARGUMENT, c.search, "shop", q, filter=3, match="filter must be a str")
        assert len(fake.searches) == n


# ---- the C client behind the CLI -----------------------------------------------------------

def _vectors(path, n, dim=4):
    """n x dim .fvecs: each row an int32 dim, then the floats."""
    rows = np.hstack([np.full((n, 1), dim, "<i4"),
                      np.arange(n * dim, dtype="<f4").reshape(n, dim).view("<i4")])
    rows.astype("<i4").tofile(path)
    return path


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_cli_create_with_attrs_and_describe(fake):
    p = _cli(fake.target, "create", "shop", "--dim", "4", "--attr", "category:int64", "--attr",
             "price:float", "--attr", "tags:tags")
    assert p.returncode == 0, p.stderr
    assert [(a.name, a.type) for a in fake.creates[-1].attributes] == \
        [("category", pb.ATTRIBUTE_INT64), ("price", pb.ATTRIBUTE_FLOAT),
         ("tags", pb.ATTRIBUTE_TAGS)]
    assert "attributes: category int64, price float, tags tags" in p.stdout
    for bad, needle in (("category", "NAME:TYPE"), ("category:string", "unknown attribute type"),
                        (":int64", "NAME:TYPE")):
        p = _cli(fake.target, "create", "shop", "--dim", "4", "--attr", bad)
        assert p.returncode == 2 and needle in p.stderr, p.stderr
    p = _cli(fake.target, "describe", "shop", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["attributes"] == [{"name": n, "type": t} for n, t in
                               (("category", "int64"), ("price", "float"), ("sold_out", "bool"),
                                ("brand", "keyword"), ("tags", "tags"))]
    assert d["attribute_bytes"] == 4096
    p = _cli(fake.target, "describe", "plain", "--json")
    assert json.loads(p.stdout)["attributes"] == []
    p = _cli(fake.target, "describe", "shop")
    assert "attributes: category int64, price float, sold_out bool, brand keyword, tags tags" \
        in p.stdout


def test_cli_upsert_attrs_then_get(fake, tmp_path):
    vecs = _vectors(tmp_path / "v.fvecs", ROWS)
    rows = [{k: (v[i].item() if isinstance(v, np.ndarray) else v[i]) for k, v in ATTRS.items()}
            for i in range(ROWS)]
    rows[5] = {"category": 9}  # absent keys: defaults
    rows[6]["brand"] = None  # null: the default
    p = _cli(fake.target, "upsert", "shop", "--input", str(vecs), "--attrs",
             str(_jsonl(tmp_path / "a.jsonl", rows)))
    assert p.returncode == 0, p.stderr
    assert "with their attributes" in p.stdout
    msg = fake.streams[-1][0]
    cols = {c.name: c for c in msg.attributes}
    assert list(cols) == ["category", "price", "sold_out", "brand", "tags"]  # every column
    assert list(cols["category"].ints) == [3, 7, 3, 1, 0, 9, 7]
    assert list(cols["price"].floats) == [9.5, 20.0, 0.25, 1e10, -3.0, 0.0, 19.99]
    assert list(cols["sold_out"].bools) == [False, True, False, False, True, False, True]
    assert list(cols["brand"].keywords) == ["acme", "", "zeta", "acme", "ünï \"q\"", "", ""]
    assert [list(t.tags) for t in cols["tags"].tags] == \
        [["summer", "sale"], [], ["winter"], ["a", "b", "c"], [], [], ["summer"]]

    p = _cli(fake.target, "get", "shop", "--ids", "4,0,77", "--fields", "attributes", "--json")
    assert p.returncode == 0, p.stderr
    assert list(fake.gets[-1].fields) == ["attributes"]
    got = json.loads(p.stdout)
    assert got["missing_ids"] == [77]
    assert got["items"][0] == {"id": 4, "attributes": {"category": 0, "price": -3.0,
                                                       "sold_out": True, "brand": "ünï \"q\"",
                                                       "tags": []}}
    assert got["items"][1]["attributes"]["tags"] == ["summer", "sale"]
    assert "vector" not in got["items"][0]
    p = _cli(fake.target, "get", "shop", "--ids", "3")  # all fields, text
    assert p.returncode == 0, p.stderr
    assert 'attributes {"category": 1, "price": 10000000000, "sold_out": false, ' \
           '"brand": "acme", "tags": ["a", "b", "c"]}' in p.stdout
    p = _cli(fake.target, "get", "shop", "--ids", "3", "--fields", "colour")
    assert p.returncode == 2 and "attributes" in p.stderr


def test_cli_upsert_attrs_mistakes_name_the_line_and_key(fake, tmp_path):
    vecs = _vectors(tmp_path / "v.fvecs", 3)
    ok = {"category": 1}
    cases = [
        ([ok, {"category": "three"}, ok], "line 2: \"category\" is int64: it takes an integer, "
                                          "not a string"),
        ([ok, ok, {"price": "cheap"}], "line 3: \"price\" is float: it takes a number"),
        ([{"category": 1.5}, ok, ok], "line 1: \"category\" is int64"),
        ([ok, {"sold_out": 1}, ok], "line 2: \"sold_out\" is bool: it takes true or false"),
        ([ok, {"tags": "summer"}, ok], "line 2: \"tags\" is tags: it takes an array of strings"),
        ([ok, {"tags": ["a", 2]}, ok], "line 2: \"tags\" is tags: an array of strings, but its "
                                       "item 1 is an integer"),
        ([ok, {"colour": "red"}, ok], "line 2: unknown attribute \"colour\" (shop has: "
                                      "category (int64), price (float)"),
        ([ok, "{not json", ok], "line 2: not JSON"),
        ([ok, "[1, 2]", ok], "line 2: a row is a JSON object"),
        ([ok, ok], "has 2 line(s)"),
        ([ok, ok, ok, ok], "line 4: more lines than the 3 vectors"),
        ([ok, {"brand": "x" * 300}, ok], "line 2: \"brand\" is 300 bytes long"),
    ]
    n = len(fake.streams)
    for rows, needle in cases:
        p = _cli(fake.target, "upsert", "shop", "--input", str(vecs), "--attrs",
                 str(_jsonl(tmp_path / "bad.jsonl", rows)))
        assert p.returncode == 1, (rows, p.stdout)
        assert needle in p.stderr, (needle, p.stderr)
        assert "bad.jsonl" in p.stderr
    assert len(fake.streams) == n  # nothing was sent
    p = _cli(fake.target, "upsert", "plain", "--input", str(vecs), "--attrs",
             str(_jsonl(tmp_path / "a.jsonl", [ok] * 3)))
    assert p.returncode == 1 and "has no attributes" in p.stderr, p.stderr
    p = _cli(fake.target, "upsert", "shop", "--input", str(vecs), "--attrs",
             str(tmp_path / "absent.jsonl"))
    assert p.returncode == 1 and "absent.jsonl" in p.stderr, p.stderr


def test_cli_search_sends_the_filter(fake, tmp_path):
    q = _vectors(tmp_path / "q.fvecs", 3)
    expr = 'category in (3, 7) and tags has "summer"'
    p = _cli(fake.target, "search", "shop", "--queries", str(q), "--k", "2", "--filter", expr,
             "--json")
    assert p.returncode == 0, p.stderr
    assert (fake.searches[-1].filter, fake.searches[-1].filter_path) == \
        (expr, pb.FILTER_PATH_AUTO)
    out = json.loads(p.stdout)
    assert (out["filter"], out["filter_path"]) == (expr, "auto")
    p = _cli(fake.target, "search", "shop", "--ids", "1,2", "--k", "2", "--filter", "sold_out",
             "--filter-path", "index")
    assert p.returncode == 0, p.stderr
    assert (fake.searches[-1].filter, fake.searches[-1].filter_path) == \
        ("sold_out", pb.FILTER_PATH_INDEX)
    assert list(fake.searches[-1].query_ids) == [1, 2]
    assert "filter (index path): sold_out" in p.stdout
    p = _cli(fake.target, "search", "shop", "--queries", str(q), "--filter-path", "exact")
    assert p.returncode == 2 and "--filter-path goes with --filter" in p.stderr
    p = _cli(fake.target, "search", "shop", "--queries", str(q), "--filter", "x",
             "--filter-path", "fast")
    assert p.returncode == 2 and "auto, exact or index" in p.stderr
    p = _cli(fake.target, "search", "shop", "--queries", str(q), "--json")
    assert json.loads(p.stdout)["filter"] is None and fake.searches[-1].filter == ""
