"""Every failure is a QuiverError carrying the gRPC status code, its message led by the code name."""

from __future__ import annotations

import socket

import grpc
import numpy as np
import pytest

import quiver_client
from quiver_client import QuiverError

S = grpc.StatusCode


def expect(code: grpc.StatusCode, fn, *args, match: str = "", **kwargs) -> QuiverError:
    with pytest.raises(QuiverError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.code == code, f"expected {code.name}, got {err}"
    assert str(err).startswith(f"{code.name}: "), str(err)
    assert str(err) == f"{code.name}: {err.details}"
    assert match in err.details, f"{match!r} not in {err.details!r}"
    return err


@pytest.fixture(scope="module")
def col(client):
    """A Flat l2 collection of dimension 8 with 10 vectors, and an unbuilt IVF one."""
    client.create("err_flat", dim=8)
    client.upsert("err_flat", np.arange(10), np.ones((10, 8), np.float32))
    client.create("err_ivf", dim=8, spec="IVF4,Flat")
    client.upsert("err_ivf", np.arange(3), np.ones((3, 8), np.float32))
    yield "err_flat"
    client.drop("err_flat")
    client.drop("err_ivf")


def test_is_an_exception():
    assert issubclass(QuiverError, Exception)
    e = QuiverError(S.INTERNAL, "boom")
    assert (e.code, e.details, str(e)) == (S.INTERNAL, "boom", "INTERNAL: boom")


def test_not_found(client):
    q = np.zeros((1, 8), np.float32)
    expect(S.NOT_FOUND, client.search, "no_such", q, match="no_such")
    expect(S.NOT_FOUND, client.describe, "no_such")
    expect(S.NOT_FOUND, client.drop, "no_such")
    expect(S.NOT_FOUND, client.delete, "no_such", [1])
    expect(S.NOT_FOUND, client.upsert, "no_such", [1], q)
    expect(S.NOT_FOUND, client.build, "no_such")
    expect(S.NOT_FOUND, client.health, "no.such.Service")


def test_wrong_dimension(client, col):
    err = expect(S.INVALID_ARGUMENT, client.search, col, np.zeros((2, 96), np.float32),
                 match="dimension")
    assert str(err).startswith("INVALID_ARGUMENT: query dimension 96")
    # 2 x 4 floats would divide evenly into one query of 8: the dim field still refuses it.
    expect(S.INVALID_ARGUMENT, client.search, col, np.zeros((2, 4), np.float32))
    expect(S.INVALID_ARGUMENT, client.upsert, col, [1], np.zeros((1, 9), np.float32))


def test_already_exists(client, col):
    expect(S.ALREADY_EXISTS, client.create, col, dim=8, match=col)


def test_search_before_build(client, col):
    expect(S.FAILED_PRECONDITION, client.search, "err_ivf", np.zeros((1, 8), np.float32),
           match="build")
    # 3 vectors cannot train 4 lists.
    expect(S.FAILED_PRECONDITION, client.build, "err_ivf")


def test_invalid_arguments_from_the_server(client, col):
    q = np.zeros((1, 8), np.float32)
    expect(S.INVALID_ARGUMENT, client.search, col, q, k=0)
    expect(S.INVALID_ARGUMENT, client.search, col, q, k=100000)
    expect(S.INVALID_ARGUMENT, client.search, col, np.zeros((0, 8), np.float32))
    expect(S.INVALID_ARGUMENT, client.search, col, np.full((1, 8), np.nan, np.float32))
    expect(S.INVALID_ARGUMENT, client.search, "err_ivf", q, nprobe=1000)
    expect(S.INVALID_ARGUMENT, client.upsert, col, [-1], q)
    expect(S.INVALID_ARGUMENT, client.create, "bad name!", dim=8)
    expect(S.INVALID_ARGUMENT, client.create, "bad_spec", dim=8, spec="HNSW32,PQ8")
    expect(S.INVALID_ARGUMENT, client.create, "bad_dim", dim=0)
    assert "bad_spec" not in [c.name for c in client.list()]


def test_refused_client_side(client, col):
    expect(S.INVALID_ARGUMENT, client.search, col, np.zeros((2, 2, 2), np.float32), match="2-D")
    expect(S.INVALID_ARGUMENT, client.search, col, np.zeros((1, 8)), k=-1)
    expect(S.INVALID_ARGUMENT, client.search, col, [["a"] * 8])
    expect(S.INVALID_ARGUMENT, client.upsert, col, [1, 2], np.zeros((3, 8)), match="3 vectors")
    expect(S.INVALID_ARGUMENT, client.upsert, col, [[1, 2]], np.zeros((2, 8)), match="1-D")
    expect(S.INVALID_ARGUMENT, client.upsert, col, [1.5], np.zeros((1, 8)), match="integers")
    expect(S.INVALID_ARGUMENT, client.create, "m", dim=8, metric="hamming", match="hamming")


def test_unreachable_server():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with quiver_client.Client(f"127.0.0.1:{port}", timeout=5) as c:
        expect(S.UNAVAILABLE, c.list)
        expect(S.UNAVAILABLE, c.health)
        expect(S.UNAVAILABLE, c.upsert, "x", [1], np.zeros((1, 2)))
        expect(S.UNAVAILABLE, c.build, "x")

