"""deploy/k8s/ and docker-compose.cluster.yml, checked offline: no Kubernetes and no Docker engine
runs on the CI machines.

- Every resource in deploy/k8s/*.yaml validates against the schemas of Kubernetes K8S_VERSION
  that kubernetes-validate bundles, in strict mode (a field the API does not have is an error, as
  `kubectl apply` with server-side field validation would make it). A kind without a schema is an
  error too: there, a misspelt apiVersion would pass unchecked.
- What a schema cannot see: kustomization.yaml lists exactly the manifests, no resource names a
  namespace, selectors select the pods they are meant for, every StatefulSet has its headless
  Service, quiverd containers probe grpc.health.v1 on 7070 and name in --cluster exactly the etcd
  members and NATS servers the StatefulSets run.
- The quiverd flags in the manifests and the compose file are ones `quiverd --help` lists, and
  every shard server and router of the compose file names --cluster.
- Planted mistakes are reported, so that these checks can fail.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import kubernetes_validate

from conftest import BIN_DIR, REPO

# gRPC probes are GA from 1.27 and PodDisruptionBudget policy/v1 from 1.21; 1.29 is a release
# that clusters still run and that every field used here has.
K8S_VERSION = "1.29"
K8S_DIR = REPO / "deploy" / "k8s"
COMPOSE = REPO / "docker-compose.cluster.yml"
QUIVER_IMAGES = ("quiver:", "quiver-gpu:")
GRPC_PORT = 7070


# ---- helpers ---------------------------------------------------------------------------------

def load_all(path: Path) -> list[dict]:
    """The YAML documents of a file, empty ones dropped; a parse error fails the test by file."""
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as e:
        pytest.fail(f"{path}: not YAML: {e}", pytrace=False)


def validate_manifest(path: Path) -> list[str]:
    """kubernetes-validate's findings for every resource in ``path``, strict; [] when all pass."""
    errors = []
    for res in load_all(path):
        name = f"{res.get('kind')}/{res.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(res, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(top)"
            errors.append(f"{path.name}: {name}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{path.name}: {name}: {e.message}")
    return errors


def manifests() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> list[tuple[Path, dict]]:
    return [(p, r) for p in manifests() for r in load_all(p)]


def workloads() -> list[dict]:
    return [r for _, r in resources() if r["kind"] in ("StatefulSet", "Deployment")]


def quiverd_containers() -> list[tuple[dict, dict]]:
    """(workload, container) for every container that runs the quiver image."""
    return [(w, c) for w in workloads() for c in w["spec"]["template"]["spec"]["containers"]
            if c["image"].startswith(QUIVER_IMAGES)]


def flag_value(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` (``--flag V`` or ``--flag=V``), None when absent."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def flags_of(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def parse_cluster(value: str) -> dict[str, list[str]]:
    """--cluster's etcd=H:P,H:P,nats=nats://H:P,... as {"etcd": [...], "nats": [...]}."""
    parts: dict[str, list[str]] = {}
    current = None
    for item in value.split(","):
        m = re.match(r"^(etcd|nats)=(.*)$", item)
        if m:
            current, item = m.group(1), m.group(2)
            parts.setdefault(current, [])
        assert current is not None, f"--cluster {value!r} does not start with etcd="
        parts[current].append(item)
    return parts


def unknown_flags(args: list[str], known: frozenset[str] | set[str]) -> list[str]:
    return sorted(set(flags_of(args)) - known)


@functools.cache
def quiverd_flags() -> frozenset[str]:
    """The long options `quiverd --help` lists (each line '  --name  ENV  default')."""
    exe = BIN_DIR / "quiverd"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build it (cmake --build build --target quiverd) or set "
                    "QUIVER_BIN_DIR", pytrace=False)
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30).stdout
    flags = frozenset(re.findall(r"^  (--[a-z0-9-]+) ", out, re.M))
    assert "--cluster" in flags, f"quiverd --help lists no --cluster:\n{out}"
    return flags


def require_role_flag(known: frozenset[str]):
    if "--role" not in known:
        pytest.skip(f"{BIN_DIR / 'quiverd'} --help lists no --role (the router role is not built "
                    "yet): quiverd flags in the fleet files not checked")


# ---- Kubernetes manifests --------------------------------------------------------------------

def test_the_schemas_are_bundled():
    assert kubernetes_validate.utils.all_versions(), "kubernetes-validate bundles no schemas"
    v = kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "x"}}, K8S_VERSION, strict=True)
    assert v == K8S_VERSION, f"validated against {v}, not {K8S_VERSION}"


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_validates_strictly(path):
    errors = validate_manifest(path)
    assert not errors, (f"kubernetes-validate --strict -k {K8S_VERSION} {path}:\n  "
                        + "\n  ".join(errors))


def test_kustomization_lists_every_manifest():
    (k,) = load_all(K8S_DIR / "kustomization.yaml")
    assert k["kind"] == "Kustomization"
    assert sorted(k["resources"]) == [p.name for p in manifests()], \
        "kustomization.yaml's resources are not the manifests in deploy/k8s"
    assert "namespace" not in k, "deploy/k8s is namespace-agnostic: choose one with -n"


def test_no_resource_names_a_namespace():
    named = [f"{p.name}: {r['kind']}/{r['metadata']['name']}" for p, r in resources()
             if "namespace" in r["metadata"]]
    assert not named, f"resources with a namespace: {named}"


def test_selectors_select_their_pods():
    wl = workloads()
    labels = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in wl}

    def selects(sel: dict, pod_labels: dict) -> bool:
        return all(pod_labels.get(k) == v for k, v in sel.items())

    for w in wl:
        sel = w["spec"]["selector"]["matchLabels"]
        assert selects(sel, labels[w["metadata"]["name"]]), \
            f"{w['kind']}/{w['metadata']['name']}: selector {sel} does not match its own pods"
    for _, r in resources():
        if r["kind"] == "Service":
            sel = r["spec"]["selector"]
        elif r["kind"] == "PodDisruptionBudget":
            sel = r["spec"]["selector"]["matchLabels"]
        else:
            continue
        hits = [n for n, lab in labels.items() if selects(sel, lab)]
        assert len(hits) == 1, \
            f"{r['kind']}/{r['metadata']['name']} selects {hits}, not one workload"


def test_statefulsets_have_headless_services():
    services = {r["metadata"]["name"]: r for _, r in resources() if r["kind"] == "Service"}
    for w in workloads():
        if w["kind"] != "StatefulSet":
            continue
        svc = services.get(w["spec"]["serviceName"])
        assert svc is not None, f"StatefulSet/{w['metadata']['name']}: no Service " \
                                f"{w['spec']['serviceName']}"
        assert svc["spec"].get("clusterIP") == "None", \
            f"Service/{svc['metadata']['name']} is not headless: its pods get no stable names"


def test_quiverd_probes_grpc_health():
    pairs = quiverd_containers()
    assert {w["metadata"]["name"] for w, _ in pairs} == {"quiver-shard", "quiver-router"}
    for w, c in pairs:
        for probe in ("readinessProbe", "livenessProbe"):
            assert c.get(probe, {}).get("grpc", {}).get("port") == GRPC_PORT, \
                f"{w['metadata']['name']}: {probe} is not grpc.health.v1 on {GRPC_PORT}"


def test_quiverd_names_every_engine_member():
    """--cluster lists etcd-N.etcd:2379 and nats://nats-N.nats:4222 for every replica run."""
    replicas = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads()}
    want = {"etcd": [f"etcd-{i}.etcd:2379" for i in range(replicas["etcd"])],
            "nats": [f"nats://nats-{i}.nats:4222" for i in range(replicas["nats"])]}
    for w, c in quiverd_containers():
        name = w["metadata"]["name"]
        value = flag_value(c["args"], "--cluster")
        assert value, f"{name}: no --cluster"
        assert parse_cluster(value) == want, f"{name}: --cluster {value}, expected {want}"
        assert flag_value(c["args"], "--node-id") == "$(POD_NAME)", f"{name}: --node-id"
        if w["kind"] == "StatefulSet":
            adv = flag_value(c["args"], "--advertise") or ""
            assert adv.startswith(f"$(POD_NAME).{w['spec']['serviceName']}."), \
                f"{name}: --advertise {adv!r} is not the pod's name under its headless Service"
        else:
            assert flag_value(c["args"], "--role") == "router", f"{name}: not --role router"
    # etcd's bootstrap list and NATS's routes name the same members.
    (etcd,) = [w for w in workloads() if w["metadata"]["name"] == "etcd"]
    args = etcd["spec"]["template"]["spec"]["containers"][0]["args"]
    initial = flag_value(args, "--initial-cluster") or ""
    assert initial.split(",") == [f"etcd-{i}=http://etcd-{i}.etcd:2380"
                                  for i in range(replicas["etcd"])], initial
    (conf,) = [r for _, r in resources() if r["kind"] == "ConfigMap"
               and r["metadata"]["name"] == "nats-config"]
    routes = re.findall(r"nats://(nats-\d+)\.nats:6222", conf["data"]["nats.conf"])
    assert routes == [f"nats-{i}" for i in range(replicas["nats"])], routes


def test_manifest_quiverd_flags_exist():
    known = quiverd_flags()
    require_role_flag(known)
    for w, c in quiverd_containers():
        bad = unknown_flags(c["args"], known)
        assert not bad, f"{w['metadata']['name']}: quiverd has no {bad} (quiverd --help)"


# ---- planted mistakes ------------------------------------------------------------------------

PLANTS = [
    # (what, file, text, replacement, a word the report must hold)
    ("misspelt field", "quiver-shard.yaml", "readinessProbe:", "readinesProbe:", "readinesProbe"),
    ("wrong type", "quiver-shard.yaml", "replicas: 4", "replicas: four", "four"),
    ("unknown apiVersion", "quiver-router.yaml", "apiVersion: apps/v1", "apiVersion: app/v1",
     "app/v1"),
]


@pytest.mark.parametrize("what,name,text,replacement,word", PLANTS, ids=[p[0] for p in PLANTS])
def test_a_planted_mistake_is_reported(tmp_path, what, name, text, replacement, word):
    src = (K8S_DIR / name).read_text()
    assert text in src, f"{name} no longer holds {text!r}: update the plant"
    bad = tmp_path / name
    bad.write_text(src.replace(text, replacement, 1))
    errors = validate_manifest(bad)
    assert errors, f"kubernetes-validate passed {name} with a {what} ({replacement!r})"
    assert any(word in e for e in errors), f"the report does not name {word!r}: {errors}"
    assert validate_manifest(K8S_DIR / name) == [], "the original should pass"


def test_a_planted_unknown_flag_is_reported():
    known = {"--cluster", "--node-id"}
    assert unknown_flags(["--cluster", "etcd=e:1", "--node-id=x"], known) == []
    assert unknown_flags(["--cluster", "etcd=e:1", "--nodeid", "x"], known) == ["--nodeid"]
    assert parse_cluster("etcd=a:1,b:2,nats=nats://c:3,nats://d:4") == \
        {"etcd": ["a:1", "b:2"], "nats": ["nats://c:3", "nats://d:4"]}


# ---- docker-compose.cluster.yml --------------------------------------------------------------

def compose_services() -> dict[str, dict]:
    (doc,) = load_all(COMPOSE)
    return doc["services"]


def quiver_services() -> dict[str, dict]:
    return {n: s for n, s in compose_services().items()
            if str(s.get("image", "")).startswith(QUIVER_IMAGES)}


def test_compose_fleet_shape():
    svcs = compose_services()
    q = quiver_services()
    routers = [n for n, s in q.items() if flag_value(s["command"], "--role") == "router"]
    shards = [n for n in q if n not in routers]
    assert len([n for n in svcs if n.startswith("etcd-")]) == 3, "3 etcd members"
    assert len([n for n in svcs if n.startswith("nats-")]) == 3, "3 NATS servers"
    assert len(shards) >= 2 and routers, f"shards {shards}, routers {routers}"
    # Every quiver service builds the image the repo's Dockerfile makes, from a stage it has.
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (REPO / "Dockerfile").read_text(), re.M))
    for n, s in q.items():
        assert s.get("build", {}).get("target") in stages, f"{n}: builds no Dockerfile stage"


def test_compose_quiverd_names_cluster():
    svcs = compose_services()
    want = {"etcd": sorted(f"{n}:2379" for n in svcs if n.startswith("etcd-")),
            "nats": sorted(f"nats://{n}:4222" for n in svcs if n.startswith("nats-"))}
    ids = set()
    for n, s in quiver_services().items():
        cmd = s["command"]
        value = flag_value(cmd, "--cluster")
        assert value, f"{n}: no --cluster"
        got = {k: sorted(v) for k, v in parse_cluster(value).items()}
        assert got == want, f"{n}: --cluster {value}, expected every member of {want}"
        node_id = flag_value(cmd, "--node-id")
        assert node_id and node_id not in ids, f"{n}: --node-id {node_id!r} missing or repeated"
        ids.add(node_id)
        if flag_value(cmd, "--role") != "router":
            assert flag_value(cmd, "--advertise") == f"{n}:7070", \
                f"{n}: --advertise must be the service name routers dial"
            assert any(str(v).endswith(":/data") for v in s.get("volumes", [])), \
                f"{n}: no volume of its own at /data"


def test_compose_quiverd_flags_exist():
    known = quiverd_flags()
    require_role_flag(known)
    for n, s in quiver_services().items():
        bad = unknown_flags(s["command"], known)
        assert not bad, f"{COMPOSE.name}: {n}: quiverd has no {bad} (quiverd --help)"
