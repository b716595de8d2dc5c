"""Tokens and TLS from Python: a quiverd with --auth-tokens and TLS (certificates made by openssl
here) answers a client with the CA and the right token, and refuses the others."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import quiver_client

from conftest import Quiverd

READ = "py-read-token-5b2f0c7e91"
ADMIN = "py-admin-token-c8d13a6f42"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=t-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
            "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    (d / "tokens.txt").write_text(f"read {READ}\nadmin {ADMIN}\n")
    srv = Quiverd(d, ["--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key"),
                      "--auth-tokens", str(d / "tokens.txt")])
    yield srv, d
    assert srv.stop() == 0, srv.log()


def test_tokens_and_tls(secured):
    srv, d = secured
    # the certificate's IP name: without /etc/hosts (a minimal root) localhost does not resolve
    target = f"127.0.0.1:{srv.port}"
    ca = str(d / "ca.pem")
    with quiver_client.Client(target, timeout=10, tls_ca=ca, token=ADMIN) as admin:
        admin.create("sec", dim=4)
        admin.upsert("sec", np.arange(3), np.eye(3, 4, dtype=np.float32) + 0.5)
        ids, _ = admin.search("sec", np.ones((1, 4), np.float32), k=2)
        assert ids.shape == (1, 2)
    with quiver_client.Client(target, timeout=10, tls_ca=ca, token=READ) as reader:
        assert reader.describe("sec").count == 3
        with pytest.raises(quiver_client.QuiverError) as e:
            reader.drop("sec")
        assert e.value.code.name == "PERMISSION_DENIED"
    with quiver_client.Client(target, timeout=10, tls_ca=ca, token="") as anonymous:
        assert anonymous.health()  # health stays open
        with pytest.raises(quiver_client.QuiverError) as e:
            anonymous.list()
        assert e.value.code.name == "UNAUTHENTICATED"
    with quiver_client.Client(target, timeout=3, token=ADMIN) as plaintext:
        with pytest.raises(quiver_client.QuiverError) as e:
            plaintext.list()
        assert e.value.code.name == "UNAVAILABLE"
    assert READ not in srv.log() and ADMIN not in srv.log()
    with pytest.raises(quiver_client.QuiverError):
        quiver_client.Client(target, tls_cert=str(d / "server.pem"))  # a cert needs its key
