"""grpc.health.v1 Watch through Client.health_watch against the real quiverd: the status at once,
SERVICE_UNKNOWN on a stream that stays open, the end at a timeout and at a stop (NOT_SERVING
first, and a stop that the open watch does not hold until its grace period), a watch cancelled by
leaving the loop; and gRPC's own client-side health checking, which watches."""

from __future__ import annotations

import json
import time

import grpc
import pytest

import quiver_client

from conftest import Quiverd


def test_health_watch_yields_serving_and_ends_at_its_timeout(client):
    t0 = time.monotonic()
    assert list(client.health_watch(timeout=0.5)) == ["SERVING"]
    assert list(client.health_watch("quiver.v1.Retrieval", timeout=0.5)) == ["SERVING"]
    assert time.monotonic() - t0 < 30


def test_an_unknown_service_is_service_unknown_and_the_stream_stays_open(client):
    t0 = time.monotonic()
    # Check says NOT_FOUND; Watch says SERVICE_UNKNOWN and keeps the stream open until the timeout.
    with pytest.raises(quiver_client.QuiverError):
        client.health("no.such.Service")
    assert list(client.health_watch("no.such.Service", timeout=1.0)) == ["SERVICE_UNKNOWN"]
    assert time.monotonic() - t0 >= 0.9


def test_leaving_the_loop_cancels_the_watch(client):
    for _ in range(5):
        for status in client.health_watch():
            assert status == "SERVING"
            break
    w = client.health_watch()
    assert next(w) == "SERVING"
    w.close()
    assert client.health() is True


def test_a_stop_sends_not_serving_then_ends_the_watch(tmp_path):
    srv = Quiverd(tmp_path, extra=("--shutdown-grace-ms", "30000"))
    try:
        with quiver_client.Client(srv.target, timeout=30) as c:
            w = c.health_watch()
            assert next(w) == "SERVING"
            t0 = time.monotonic()
            srv.proc.terminate()
            assert next(w) == "NOT_SERVING"
            with pytest.raises(StopIteration):  # ended, not an error: the server is stopping
                next(w)
            assert srv.proc.wait(30) == 0, srv.log()
            assert time.monotonic() - t0 < 10, "the stop waited for the open watch:\n" + srv.log()
    finally:
        srv.stop()


def test_an_unreachable_server_raises(tmp_path):
    srv = Quiverd(tmp_path)
    target = srv.target
    assert srv.stop() == 0
    with quiver_client.Client(target, timeout=5) as c:
        with pytest.raises(quiver_client.QuiverError) as e:
            list(c.health_watch(timeout=5))
        assert e.value.code.name == "UNAVAILABLE"


def test_grpc_client_side_health_checking_watches_quiverd(server):
    """A channel with healthCheckConfig (and round_robin, which gRPC needs for it) opens a Watch
    per backend and sends calls only to a SERVING one: unmodified gRPC, quiverd's Watch."""
    def client(service_name):
        cfg = {"loadBalancingConfig": [{"round_robin": {}}],
               "healthCheckConfig": {"serviceName": service_name}}
        return quiver_client.Client(server.target, timeout=10,
                                    options=[("grpc.service_config", json.dumps(cfg)),
                                             ("grpc.use_local_subchannel_pool", 1)])

    with client("quiver.v1.Retrieval") as c:
        assert isinstance(c.list(), list)
    with client("no.such.Service") as c:  # SERVICE_UNKNOWN: the backend is unhealthy
        with pytest.raises(quiver_client.QuiverError) as e:
            c.list()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        assert "unhealthy" in e.value.details
