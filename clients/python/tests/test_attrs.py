"""Item attributes and filtered search against the real quiverd: a schema at create, attributes
upserted with the vectors, filtered searches equal to brute force over the matching rows
(computed here with numpy) on both filter paths, get's round trip, persistence across a restart,
and the mistakes a caller can make (test_attrs_wire.py pins the wire format without a server)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import quiver_client
from quiver_client._pb.quiver.v1 import retrieval_pb2 as pb

from conftest import Quiverd

S = grpc.StatusCode
N, DIM, K = 3000, 16, 10
SCHEMA = [("category", "int64"), ("price", "float"), ("sold_out", "bool"), ("brand", "keyword"),
          ("tags", "tags")]
BRANDS = ["acme", "zeta", "b", ""]
TAGS = ["summer", "sale", "winter", "new"]


def make_data(seed: int = 17):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    queries = rng.standard_normal((20, DIM)).astype(np.float32)
    attrs = {
        "category": rng.integers(0, 10, N),
        "price": np.round(rng.uniform(0, 50, N), 2),
        "sold_out": rng.random(N) < 0.3,
        "brand": [BRANDS[i] for i in rng.integers(0, len(BRANDS), N)],
        "tags": [[t for t in TAGS if rng.random() < 0.35] for _ in range(N)],
    }
    return base, queries, attrs


def has(tags, t):
    return np.array([t in row for row in tags])


# Filters and the rows they match, computed from the attributes with numpy.
FILTERS = [
    ('category in (3, 7) and price < 20 and not sold_out and tags has "summer"',
     lambda a: np.isin(a["category"], [3, 7]) & (a["price"] < 20) & ~a["sold_out"]
     & has(a["tags"], "summer")),
    ('brand = "acme" or price >= 45',
     lambda a: (np.array(a["brand"]) == "acme") | (a["price"] >= 45)),
    ('category != 3 and tags has any ("sale", "new")',
     lambda a: (a["category"] != 3) & (has(a["tags"], "sale") | has(a["tags"], "new"))),
    ("not (category < 5) and sold_out",
     lambda a: ~(a["category"] < 5) & a["sold_out"]),
    ('tags has all ("summer", "sale") and brand not in ("zeta", "")',
     lambda a: has(a["tags"], "summer") & has(a["tags"], "sale")
     & ~np.isin(np.array(a["brand"]), ["zeta", ""])),
    ("price > 49.5 AND category = 9", lambda a: (a["price"] > 49.5) & (a["category"] == 9)),
    ("category = 42", lambda a: np.zeros(N, bool)),
]


def brute_force(base, ids, queries, mask, k, exclude=None):
    """Top-k squared L2 over the rows of mask: ids [nq, k] padded with -1, and distances."""
    rows = np.flatnonzero(mask)
    out_ids = np.full((len(queries), k), -1, np.int64)
    out_d = np.full((len(queries), k), np.inf, np.float32)
    for qi, q in enumerate(queries):
        r = rows if exclude is None else rows[ids[rows] != exclude[qi]]
        d = ((base[r] - q) ** 2).sum(axis=1)
        order = np.argsort(d, kind="stable")[:k]
        out_ids[qi, :len(order)] = ids[r[order]]
        out_d[qi, :len(order)] = d[order]
    return out_ids, out_d


def check_equal(result, want_ids, want_d, what):
    ids, scores = result
    np.testing.assert_array_equal(ids, want_ids, err_msg=what)
    real = want_ids >= 0
    np.testing.assert_allclose(scores[real], want_d[real], rtol=1e-4, atol=1e-4, err_msg=what)


@pytest.fixture(scope="module")
def shop(client):
    """The same items in a Flat and an IVF16,Flat collection (built; searched at nprobe 16,
    every list, so that each path answers exactly), ids 1000.. ."""
    base, queries, attrs = make_data()
    ids = np.arange(1000, 1000 + N, dtype=np.int64)
    names = ["attrs_flat", "attrs_ivf"]
    for name, spec in zip(names, ["Flat", "IVF16,Flat"]):
        info = client.create(name, dim=DIM, spec=spec, attributes=SCHEMA)
        assert info.attributes == tuple(SCHEMA)
        assert client.upsert(name, ids, base, attributes=attrs, chunk_bytes=64 << 10) == N
    client.build("attrs_ivf")
    yield names, base, queries, attrs, ids
    for name in names:
        client.drop(name)


@pytest.mark.parametrize("path", ["exact", "index", "auto"])
@pytest.mark.parametrize("expr,mask_of", FILTERS, ids=[f[0][:30] for f in FILTERS])
def test_filtered_search_equals_brute_force_over_the_matches(client, shop, expr, mask_of, path):
    names, base, queries, attrs, ids = shop
    mask = mask_of(attrs)
    want_ids, want_d = brute_force(base, ids, queries, mask, K)
    for name in names:
        nprobe = 16 if name == "attrs_ivf" else 0
        r = client.search(name, queries, k=K, nprobe=nprobe, filter=expr, filter_path=path)
        check_equal(r, want_ids, want_d, f"{name} {path} {expr!r} ({mask.sum()} matches)")


def test_few_matches_pad_and_item_to_item_filters(client, shop):
    names, base, queries, attrs, ids = shop
    expr = "price > 49.5 AND category = 9"
    mask = FILTERS[5][1](attrs)
    assert 0 < mask.sum() < K  # fewer than k: the rows pad
    r = client.search(names[0], queries[:2], k=K, filter=expr)
    assert (r.ids[:, mask.sum():] == -1).all() and (r.ids[:, :mask.sum()] >= 0).all()
    # Item-to-item under a filter: the query item itself is left out.
    expr, mask_of = FILTERS[1]
    mask = mask_of(attrs)
    qrows = np.flatnonzero(mask)[:3]
    want_ids, want_d = brute_force(base, ids, base[qrows], mask, K, exclude=ids[qrows])
    for name in names:
        r = client.search(name, query_ids=ids[qrows], k=K, nprobe=16 if "ivf" in name else 0,
                          filter=expr, filter_path="exact")
        check_equal(r, want_ids, want_d, f"{name} query_ids")


def test_get_round_trips_the_attributes(client, shop):
    names, base, queries, attrs, ids = shop
    rows = np.array([5, 0, 2999, 5, 1234])
    for name in names:
        it = client.get(name, ids[rows].tolist() + [7], fields=["attributes"])
        assert it.ids.tolist() == ids[rows].tolist() and it.missing_ids.tolist() == [7]
        assert it.vectors is None
        a = it.attributes
        assert [n for n, _ in SCHEMA] == list(a)
        np.testing.assert_array_equal(a["category"], attrs["category"][rows])
        assert a["category"].dtype == np.int64
        np.testing.assert_array_equal(a["price"], attrs["price"][rows])
        np.testing.assert_array_equal(a["sold_out"], attrs["sold_out"][rows])
        assert a["brand"] == [attrs["brand"][r] for r in rows]
        assert [sorted(t) for t in a["tags"]] == [sorted(attrs["tags"][r]) for r in rows]
        full = client.get(name, [ids[3]])
        np.testing.assert_array_equal(full.vectors, base[[3]])
        assert full.attributes["brand"] == [attrs["brand"][3]]


def test_an_upsert_replaces_the_whole_item(client):
    name = "attrs_replace"
    client.create(name, dim=4, attributes=dict(SCHEMA))
    try:
        v = np.eye(4, dtype=np.float32)
        client.upsert(name, [1, 2, 3, 4], v, attributes={
            "category": [1, 2, 3, 4], "price": [1.5, 2.5, 3.5, 4.5],
            "sold_out": [True, False, True, False], "brand": ["a", "b", "c", "d"],
            "tags": [["x"], ["y", "z"], [], ["x", "x"]]})
        a = client.get(name, [4]).attributes
        assert a["tags"] == [["x"]]  # repeats count once
        client.upsert(name, [2], v[1], attributes={"price": [9.0]})  # the rest: defaults
        a = client.get(name, [2]).attributes
        assert (a["category"].tolist(), a["price"].tolist(), a["sold_out"].tolist(),
                a["brand"], a["tags"]) == ([0], [9.0], [False], [""], [[]])
        client.upsert(name, [3], v[2])  # no attributes at all: every default
        assert client.get(name, [3]).attributes["category"].tolist() == [0]
        r = client.search(name, v[0], k=4, filter="category >= 1")
        assert sorted(r.ids[0][r.ids[0] >= 0].tolist()) == [1, 4]
        client.delete(name, [1])
        r = client.search(name, v[0], k=4, filter="category >= 1", filter_path="exact")
        assert r.ids[0].tolist() == [4, -1, -1, -1]
        d = client.describe(name)
        assert d.attributes == tuple(SCHEMA) and d.attribute_bytes > 0
    finally:
        client.drop(name)


def test_attributes_survive_a_restart(tmp_path):
    base, queries, attrs = make_data(3)
    ids = np.arange(N, dtype=np.int64)
    expr, mask_of = FILTERS[0]
    want = brute_force(base, ids, queries, mask_of(attrs), K)
    srv = Quiverd(tmp_path)
    try:
        with quiver_client.Client(srv.target, timeout=60) as c:
            c.create("keep", dim=DIM, attributes=SCHEMA)
            c.upsert("keep", ids[:2000], base[:2000], attributes={
                k: v[:2000] for k, v in attrs.items()})
            c.build("keep")  # a snapshot with attributes ...
            c.upsert("keep", ids[2000:], base[2000:], attributes={  # ... and a write-ahead log
                k: v[2000:] for k, v in attrs.items()})
        assert srv.stop() == 0, srv.log()
        srv.port_file.unlink()  # else the new server's port is read from the old file
        srv = Quiverd(tmp_path)
        with quiver_client.Client(srv.target, timeout=60) as c:
            assert c.describe("keep").attributes == tuple(SCHEMA)
            check_equal(c.search("keep", queries, k=K, filter=expr), *want, "after restart")
            got = c.get("keep", [0, 2500]).attributes
            assert got["brand"] == [attrs["brand"][0], attrs["brand"][2500]]
            np.testing.assert_array_equal(got["price"], attrs["price"][[0, 2500]])
    finally:
        srv.stop()


def _expect(code, fn, *args, match=(), **kwargs):
    with pytest.raises(quiver_client.QuiverError) as e:
        fn(*args, **kwargs)
    assert e.value.code == code, str(e.value)
    for m in (match,) if isinstance(match, str) else match:
        assert m in e.value.details, e.value.details
    return e.value


def test_bad_filters_and_schemas_are_refused(client, shop):
    names, base, queries, attrs, ids = shop
    q = queries[:1]
    for expr in ("colour = 3", "price <", "brand < 3", "tags = \"a\"", "category in (1, )",
                 "sold_out and", "category has \"x\"", "(price > 1"):
        e = _expect(S.INVALID_ARGUMENT, client.search, names[0], q, filter=expr, match="column")
        assert "filter" in e.details, e.details
    _expect(S.INVALID_ARGUMENT, client.search, names[0], q, filter="colour = 3",
            match=("column 1", "colour"))
    client.create("attrs_none", dim=DIM)
    try:
        client.upsert("attrs_none", [1], base[0])
        _expect(S.FAILED_PRECONDITION, client.search, "attrs_none", q, filter="category = 1")
        assert client.get("attrs_none", [1]).attributes is None
    finally:
        client.drop("attrs_none")
    for bad in ([("and", "int64")], [("1x", "int64")], [("a", "int64"), ("a", "float")],
                [(f"a{i}", "bool") for i in range(33)]):
        _expect(S.INVALID_ARGUMENT, client.create, "attrs_bad", dim=4, attributes=bad)
    _expect(S.INVALID_ARGUMENT, client.create, "attrs_bad", dim=4, attributes=[("a", "text")])


def test_the_server_checks_the_columns_it_is_sent(client, shop):
    """What a client without the schema's types could send (the Python client checks these
    itself): raw UpsertRequests with a column of no attribute, of the wrong type, too short."""
    name = shop[0][0]
    before = client.describe(name).count

    def upsert_raw(col):
        req = pb.UpsertRequest(collection=name, ids=[1, 2], vectors=[0.5] * (2 * DIM))
        req.attributes.append(col)
        try:
            client._stub.Upsert(iter([req]), timeout=30)
        except grpc.RpcError as e:
            return e
        pytest.fail(f"an upsert with column {col} was accepted")

    e = upsert_raw(pb.AttributeColumn(name="colour", ints=[1, 2]))
    assert e.code() == S.INVALID_ARGUMENT and "colour" in e.details(), e.details()
    e = upsert_raw(pb.AttributeColumn(name="category", keywords=["a", "b"]))
    assert e.code() == S.INVALID_ARGUMENT and "category" in e.details(), e.details()
    e = upsert_raw(pb.AttributeColumn(name="price", floats=[1.0]))
    assert e.code() == S.INVALID_ARGUMENT and "price" in e.details(), e.details()
    e = upsert_raw(pb.AttributeColumn(name="brand", keywords=["x" * 300, "y"]))
    assert e.code() == S.INVALID_ARGUMENT and "brand" in e.details(), e.details()
    assert client.describe(name).count == before  # nothing applied
    # The Python client refuses the same before sending.
    _expect(S.INVALID_ARGUMENT, client.upsert, name, [1], base_row(), match="unknown attribute",
            attributes={"colour": [1]})
    _expect(S.INVALID_ARGUMENT, client.upsert, name, [1], base_row(), match="category",
            attributes={"category": ["a"]})


def base_row():
    return np.full((1, DIM), 0.5, np.float32)
