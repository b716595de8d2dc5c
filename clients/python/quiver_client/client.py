"""The quiverd client: a thin, typed layer over the quiver.v1 gRPC API with numpy in and out."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import zlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc
import numpy as np

from ._pb.quiver.v1 import retrieval_pb2 as pb
from ._pb.quiver.v1 import retrieval_pb2_grpc as pb_grpc

__all__ = ["Client", "ClusterStatus", "CollectionInfo", "NodeInfo", "PushResult", "QuiverError",
           "ReplicaInfo", "RolloutStatus", "SearchResult", "VersionInfo"]

ArrayLike = Union[np.ndarray, Sequence]
ProgressFn = Callable[[str, int, int], object]

_METRICS = {"l2": pb.METRIC_L2, "ip": pb.METRIC_IP, "cosine": pb.METRIC_COSINE}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}
_DEVICES = {"auto": pb.DEVICE_AUTO, "cpu": pb.DEVICE_CPU, "gpu": pb.DEVICE_GPU}
_DEVICE_NAMES = {v: k for k, v in _DEVICES.items()}
_STATES = {
    pb.COLLECTION_STATE_NOT_BUILT: "not_built",
    pb.COLLECTION_STATE_READY: "ready",
    pb.COLLECTION_STATE_BUILDING: "building",
}

# Item attributes (CreateCollectionRequest.attributes) and how a filtered search finds its
# candidates (SearchRequest.filter_path).
_ATTR_TYPES = {
    "int64": pb.ATTRIBUTE_INT64,
    "float": pb.ATTRIBUTE_FLOAT,
    "bool": pb.ATTRIBUTE_BOOL,
    "keyword": pb.ATTRIBUTE_KEYWORD,
    "tags": pb.ATTRIBUTE_TAGS,
}
_ATTR_TYPE_NAMES = {v: k for k, v in _ATTR_TYPES.items()}
_FILTER_PATHS = {"auto": pb.FILTER_PATH_AUTO, "exact": pb.FILTER_PATH_EXACT,
                 "index": pb.FILTER_PATH_INDEX}

_ROLLOUT_ACTIONS = {
    "status": pb.ROLLOUT_ACTION_STATUS,
    "flip": pb.ROLLOUT_ACTION_FLIP,
    "abort": pb.ROLLOUT_ACTION_ABORT,
    "rollback": pb.ROLLOUT_ACTION_ROLLBACK,
    "release": pb.ROLLOUT_ACTION_RELEASE,
    "begin": pb.ROLLOUT_ACTION_BEGIN,
}

# Unset: use the Client's timeout for unary calls, no deadline for the streaming ones.
_DEFAULT = object()


class QuiverError(Exception):
    """A failed call. ``code`` is the grpc.StatusCode; ``details`` the server's message.

    ``str(err)`` is ``"<STATUS_NAME>: <details>"``, e.g.
    ``INVALID_ARGUMENT: query dimension 96 does not match collection 'demo' (dimension 128)``.
    Client-side checks of obviously wrong input raise it too, with INVALID_ARGUMENT.
    """

    def __init__(self, code: grpc.StatusCode, details: str):
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def _from_rpc(cls, err: grpc.RpcError) -> "QuiverError":
        code = err.code() if callable(getattr(err, "code", None)) else None
        details = err.details() if callable(getattr(err, "details", None)) else None
        return cls(code or grpc.StatusCode.UNKNOWN, details or str(err))


def _invalid(msg: str) -> QuiverError:
    return QuiverError(grpc.StatusCode.INVALID_ARGUMENT, msg)


@dataclasses.dataclass(frozen=True)
class ReplicaInfo:
    """One replica of one shard of a fleet collection (quiver.v1.ReplicaInfo), as the fleet's
    coordination store (etcd) last saw it. ``state`` is "loading", "catching-up" or "in-sync"
    (only in-sync replicas get searches)."""

    shard: int
    node: str  # the shard server's --node-id
    addr: str  # where routers reach it
    state: str
    applied_seq: int  # the last record of the shard's write log it has applied
    log_seq: int  # the log's last record when it last looked
    count: int  # vectors it holds
    index_version: int
    # Data versions (docs/rollout.md): the one it serves, and the one held beside it (0: none)
    # with its state ("staged", "ready": staged, caught up and warmed, or "previous").
    version: int = 1
    beside_version: int = 0
    beside_state: str = ""
    beside_recall: float = -1.0

    @property
    def lag(self) -> int:
        """Write-log records it has yet to apply (``log_seq - applied_seq``, at least 0)."""
        return max(0, self.log_seq - self.applied_seq)

    @classmethod
    def _from_pb(cls, m: "pb.ReplicaInfo") -> "ReplicaInfo":
        return cls(shard=m.shard, node=m.node, addr=m.addr, state=m.state,
                   applied_seq=m.applied_seq, log_seq=m.log_seq, count=m.count,
                   index_version=m.index_version, version=m.version or 1,
                   beside_version=m.beside_version, beside_state=m.beside_state,
                   beside_recall=m.beside_recall if m.beside_version else -1.0)


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """A shard server of the fleet (quiver.v1.NodeInfo): its --node-id, address and the number
    of replicas assigned to it."""

    id: str
    addr: str
    replicas: int

    @classmethod
    def _from_pb(cls, m: "pb.NodeInfo") -> "NodeInfo":
        return cls(id=m.id, addr=m.addr, replicas=m.replicas)


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """A data version of a collection held beside the serving one (quiver.v1.VersionInfo).

    ``state`` is "staged" (imported with ``push(..., stage=True)``, not serving yet) or
    "previous" (served before the last flip, kept for a rollback until released). ``recall`` is
    its recall@``recall_k`` at ``recall_nprobe`` measured when it was staged (-1: not measured).
    """

    version: int
    state: str
    count: int
    memory_bytes: int
    recall: float = -1.0
    recall_k: int = 0
    recall_nprobe: int = 0

    @classmethod
    def _from_pb(cls, m: "pb.VersionInfo") -> "VersionInfo":
        return cls(version=m.version, state=m.state, count=m.count, memory_bytes=m.memory_bytes,
                   recall=m.recall, recall_k=m.recall_k, recall_nprobe=m.recall_nprobe)


def _held(versions: Tuple[VersionInfo, ...], state: str) -> Optional[VersionInfo]:
    return next((v for v in versions if v.state == state), None)


@dataclasses.dataclass(frozen=True)
class CollectionInfo:
    """A collection's description (quiver.v1.CollectionInfo).

    ``metric`` is "l2", "ip" or "cosine"; ``state`` is "not_built", "ready" or "building"
    (an enum value this client does not know yet shows as its number, e.g. "7").
    """

    name: str
    dim: int
    metric: str
    index_spec: str
    state: str
    default_nprobe: int
    count: int
    indexed: int
    nlist: int
    memory_bytes: int
    vector_bytes: int
    index_bytes: int
    index_version: int
    n_features: int = 0
    device: str = "auto"  # as asked: "auto", "cpu" or "gpu"
    gpu: int = -1  # the GPU answering searches; -1 = the CPU index
    device_bytes: int = 0
    placement: str = ""  # why it serves where it does, e.g. "cpu: no GPU is present"
    tombstones: int = 0
    gpu_fallbacks: int = 0
    deferred_deletes: bool = False
    build_recall: float = -1.0  # the last build's/import's recall@build_recall_k (-1: none)
    build_recall_k: int = 0
    build_recall_nprobe: int = 0
    snapshot_version: int = 0  # on-disk snapshot opened or last saved
    storage_note: str = ""  # why an older snapshot version is served; empty normally
    wal_bytes: int = 0
    wal_records: int = 0
    batched_requests: int = 0  # since the server started; 0 with --batch off
    batches: int = 0
    batched_queries: int = 0
    batch_expired: int = 0
    # A fleet collection (described by a router): its shards and the replicas each wants, and
    # every replica's state. A single node's collection is 1 shard of 1 replica with no
    # replica_info (the server sends 0 for both; read as 1).
    shards: int = 1
    replicas: int = 1
    replica_info: Tuple[ReplicaInfo, ...] = ()
    # Data versions (Client.rollout): the one served (1 at create; a plain push or a flip moves
    # it), and the one held beside it, staged or previous (at most one on a node).
    version: int = 0
    versions: Tuple[VersionInfo, ...] = ()
    # An HNSW collection's efSearch when a search sends none (its default_nprobe is 0).
    default_ef_search: int = 0
    # The item attributes declared at create, in their order: (name, type) pairs with type
    # "int64", "float", "bool", "keyword" or "tags"; and the memory their values take.
    attributes: Tuple[Tuple[str, str], ...] = ()
    attribute_bytes: int = 0

    @property
    def schema(self) -> dict:
        """The attributes as a dict name -> type (in declaration order)."""
        return dict(self.attributes)

    @property
    def staged(self) -> Optional[VersionInfo]:
        """The version staged beside the serving one (not serving yet), or None."""
        return _held(self.versions, "staged")

    @property
    def previous(self) -> Optional[VersionInfo]:
        """The version served before the last flip (a rollback serves it again), or None."""
        return _held(self.versions, "previous")

    @classmethod
    def _from_pb(cls, m: "pb.CollectionInfo") -> "CollectionInfo":
        return cls(
            name=m.name,
            dim=m.dim,
            metric=_METRIC_NAMES.get(m.metric, str(m.metric)),
            index_spec=m.index_spec,
            state=_STATES.get(m.state, str(m.state)),
            default_nprobe=m.default_nprobe,
            count=m.count,
            indexed=m.indexed,
            nlist=m.nlist,
            memory_bytes=m.memory_bytes,
            vector_bytes=m.vector_bytes,
            index_bytes=m.index_bytes,
            index_version=m.index_version,
            n_features=m.n_features,
            device=_DEVICE_NAMES.get(m.device, str(m.device)),
            gpu=m.gpu,
            device_bytes=m.device_bytes,
            placement=m.placement,
            tombstones=m.tombstones,
            gpu_fallbacks=m.gpu_fallbacks,
            deferred_deletes=m.deferred_deletes,
            build_recall=m.build_recall,
            build_recall_k=m.build_recall_k,
            build_recall_nprobe=m.build_recall_nprobe,
            snapshot_version=m.snapshot_version,
            storage_note=m.storage_note,
            wal_bytes=m.wal_bytes,
            wal_records=m.wal_records,
            batched_requests=m.batched_requests,
            batches=m.batches,
            batched_queries=m.batched_queries,
            batch_expired=m.batch_expired,
            shards=m.shards or 1,
            replicas=m.replicas or 1,
            replica_info=tuple(ReplicaInfo._from_pb(r) for r in m.replica_info),
            version=m.version,
            versions=tuple(VersionInfo._from_pb(v) for v in m.versions),
            default_ef_search=m.default_ef_search,
            attributes=tuple((a.name, _ATTR_TYPE_NAMES.get(a.type, str(a.type)))
                             for a in m.attributes),
            attribute_bytes=m.attribute_bytes,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    """What :meth:`Client.cluster_status` returns: the fleet's live shard servers and every
    collection with its shards' replicas (``CollectionInfo.replica_info``). From a single node:
    no nodes, and collections of 1 shard with no replicas (``fleet`` is False)."""

    nodes: Tuple[NodeInfo, ...]
    collections: Tuple[CollectionInfo, ...]

    @property
    def fleet(self) -> bool:
        """True when the answer came from a router that sees a fleet."""
        return bool(self.nodes) or any(c.replica_info or c.shards > 1 or c.replicas > 1
                                       for c in self.collections)

    def shard_replicas(self, collection: str, shard: int) -> List[ReplicaInfo]:
        """The replicas of ``shard`` of ``collection`` (KeyError for an unknown collection)."""
        for c in self.collections:
            if c.name == collection:
                return [r for r in c.replica_info if r.shard == shard]
        raise KeyError(collection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SearchResult(tuple):
    """What :meth:`Client.search` returns: the pair ``(ids, scores)`` (so ``ids, scores =
    client.search(...)`` unpacks it as before), with ``missing_shards``: the shards whose items
    are missing from the answer, only ever non-empty through a router with
    ``allow_partial=True``; and ``version``: the data version that answered every query (the one
    asked for with ``version=``, else the serving one; 0 from a server without data versions)."""

    def __new__(cls, ids: np.ndarray, scores: np.ndarray, missing_shards: Sequence[int] = (),
                version: int = 0, unknown_queries: Sequence[int] = ()):
        self = super().__new__(cls, (ids, scores))
        self.missing_shards = tuple(int(s) for s in missing_shards)
        self.version = int(version)
        #: With ``query_ids``: the rows (indexes into query_ids) whose id is not in the
        #: collection; those rows are all padding (id -1).
        self.unknown_queries = tuple(int(q) for q in unknown_queries)
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.missing_shards, self.version, self.unknown_queries)

    @property
    def ids(self) -> np.ndarray:
        return self[0]

    @property
    def scores(self) -> np.ndarray:
        return self[1]

    @property
    def partial(self) -> bool:
        """True when some shard's items are missing."""
        return bool(self.missing_shards)


@dataclasses.dataclass(frozen=True)
class Items:
    """What :meth:`Client.get` returns: the ids found (int64 [n], in request order), their
    ``vectors`` (float32 [n, dim], as stored: normalised for cosine) and ``features`` (float32
    [n, n_features]) when asked for (else None), and the ids not in the collection.

    ``attributes`` (when asked for, on a collection with attributes; else None): a dict name ->
    values in schema order, row i for ``ids[i]``: a numpy array for int64 (int64), float
    (float64) and bool (bool) attributes, a list of str for keyword, a list of lists of str for
    tags."""
    ids: np.ndarray
    vectors: Optional[np.ndarray]
    features: Optional[np.ndarray]
    missing_ids: np.ndarray
    attributes: Optional[dict] = None

    def __len__(self) -> int:
        return len(self.ids)


class PushResult(tuple):
    """What :meth:`Client.push` returns: the pair ``(info, recall)`` (so ``info, recall =
    client.push(...)`` unpacks it as before), with ``version``: the data version the import holds
    (staged with ``stage=True``, else the one now serving)."""

    def __new__(cls, info: CollectionInfo, recall: float, version: int = 0):
        self = super().__new__(cls, (info, float(recall)))
        self.version = int(version)
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.version)

    @property
    def info(self) -> CollectionInfo:
        return self[0]

    @property
    def recall(self) -> float:
        return self[1]


@dataclasses.dataclass(frozen=True)
class RolloutStatus:
    """What :meth:`Client.rollout` returns (quiver.v1.RolloutStatus): the data version served
    after the call, the versions held beside it, and what the call did (``message``, e.g.
    "flipped from version 1 to 2 in 0.020 s")."""

    collection: str
    version: int
    versions: Tuple[VersionInfo, ...]
    message: str
    # Through a router: the fleet rollout ("staging", "flipped", "done", "aborted",
    # "rolled-back"; "" = none), its version, the version before it, and every replica.
    state: str = ""
    rollout_version: int = 0
    previous_version: int = 0
    shards: int = 0
    replicas: Tuple[ReplicaInfo, ...] = ()
    routers: int = 0  # live routers, and those already pinning their queries to ``version``
    routers_on_version: int = 0

    @property
    def staged(self) -> Optional[VersionInfo]:
        return _held(self.versions, "staged")

    @property
    def previous(self) -> Optional[VersionInfo]:
        return _held(self.versions, "previous")

    @classmethod
    def _from_pb(cls, m: "pb.RolloutStatus") -> "RolloutStatus":
        return cls(collection=m.collection, version=m.version,
                   versions=tuple(VersionInfo._from_pb(v) for v in m.versions), message=m.message,
                   state=m.state, rollout_version=m.rollout_version,
                   previous_version=m.previous_version, shards=m.shards,
                   replicas=tuple(ReplicaInfo._from_pb(r) for r in m.replicas),
                   routers=m.routers, routers_on_version=m.routers_on_version)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _set_floats(msg, field: str, values: np.ndarray) -> None:
    """Appends float32 ``values`` to the repeated float ``field`` of ``msg``.

    Equivalent to ``getattr(msg, field).extend(values)``, but builds the packed wire encoding
    (tag, length, little-endian float32s) straight from the array's bytes and merges it: several
    times faster than converting element by element, which matters for millions of floats. (Only
    fixed-width types are packed as raw bytes; int64 fields are varints, so ids use extend.)
    """
    if values.size == 0:
        return
    fd = msg.DESCRIPTOR.fields_by_name[field]
    assert fd.type == fd.TYPE_FLOAT, f"{field} is not a float field"
    raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
    msg.MergeFromString(_varint(fd.number << 3 | 2) + _varint(len(raw)) + raw)


def _msg(cls, **fields):
    """``cls(**fields)``, with protobuf's range/type errors (k=-1, dim=2**40) as QuiverError."""
    try:
        return cls(**fields)
    except (TypeError, ValueError) as e:
        raise _invalid(f"{cls.DESCRIPTOR.name}: {e}") from None


def _as_matrix(x: ArrayLike, what: str) -> np.ndarray:
    """float32 C-contiguous little-endian [n, d]; a 1-D array is one row."""
    try:
        a = np.asarray(x, dtype="<f4")
    except (TypeError, ValueError) as e:
        raise _invalid(f"{what} must be a float array: {e}") from None
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise _invalid(f"{what} must be a 2-D array [n, dim] (or 1-D for one vector), "
                       f"got shape {a.shape}")
    return np.ascontiguousarray(a)


def _as_ids(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise _invalid(f"ids must be a 1-D array, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise _invalid(f"ids must be integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype="<i8")


def _attr_schema(attributes) -> List[Tuple[str, str]]:
    """create's ``attributes``: a dict name -> type, or (name, type) pairs."""
    if attributes is None:
        return []
    items = attributes.items() if isinstance(attributes, dict) else attributes
    out = []
    try:
        for pair in items:
            name, typ = pair
            out.append((name, typ))
    except (TypeError, ValueError):
        raise _invalid("attributes must be a dict name -> type or (name, type) pairs, e.g. "
                       "[('category', 'int64'), ('price', 'float')]") from None
    for name, typ in out:
        if not isinstance(name, str) or not isinstance(typ, str):
            raise _invalid(f"attribute ({name!r}, {typ!r}): the name and the type are strings")
        if typ.lower() not in _ATTR_TYPES:
            raise _invalid(f"attribute {name!r}: unknown type {typ!r}; use one of "
                           f"{', '.join(_ATTR_TYPES)}")
    return [(name, typ.lower()) for name, typ in out]


def _str_list(values, what: str) -> List[str]:
    if isinstance(values, (str, bytes)):
        raise _invalid(f"{what} must be a sequence of strings, not a single string")
    try:
        out = list(values)
    except TypeError:
        raise _invalid(f"{what} must be a sequence of strings") from None
    for j, v in enumerate(out):
        if not isinstance(v, str):
            raise _invalid(f"{what}[{j}] must be a str, got {type(v).__name__}")
    return [str(v) for v in out]


def _attr_column(name: str, typ: str, values, n: int):
    """One upsert column, checked against its schema type: (type, values) with values an int64,
    float64 or bool array, a list of str (keyword) or a list of lists of str (tags)."""
    what = f"attributes[{name!r}] ({typ})"
    if typ in ("keyword", "tags"):
        if isinstance(values, (str, bytes)):
            raise _invalid(f"{what} must hold one value per id, not a single string")
        try:
            rows = list(values)
        except TypeError:
            raise _invalid(f"{what} must be a sequence of one value per id") from None
        if len(rows) != n:
            raise _invalid(f"{what} has {len(rows)} values for {n} ids")
        if typ == "keyword":
            for j, v in enumerate(rows):
                if not isinstance(v, str):
                    raise _invalid(f"{what}[{j}] must be a str, got {type(v).__name__}")
            return [str(v) for v in rows]
        return [_str_list(r, f"{what}[{j}]") for j, r in enumerate(rows)]
    try:
        a = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise _invalid(f"{what}: {e}") from None
    if a.ndim != 1 or len(a) != n:
        raise _invalid(f"{what} must be 1-D with one value per id: shape {a.shape} for {n} ids")
    kind = a.dtype.kind if a.size else {"int64": "i", "float": "f", "bool": "b"}[typ]
    if typ == "int64":
        if kind not in "iu":
            raise _invalid(f"{what} must be integers, got dtype {a.dtype}")
        if kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
            raise _invalid(f"{what} has a value above the int64 range")
        return a.astype(np.int64)
    if typ == "float":
        if kind not in "iuf":
            raise _invalid(f"{what} must be numbers, got dtype {a.dtype}")
        f = a.astype(np.float64)
        if not np.isfinite(f).all():
            raise _invalid(f"{what} row {int(np.argmin(np.isfinite(f)))} is not finite")
        return f
    if kind != "b":
        raise _invalid(f"{what} must be booleans, got dtype {a.dtype}")
    return a.astype(bool)


def _fill_column(col, typ: str, values, start: int, stop: int) -> None:
    part = values[start:stop]
    if typ == "int64":
        col.ints.extend(part.tolist())
    elif typ == "float":
        col.floats.extend(part.tolist())
    elif typ == "bool":
        col.bools.extend(part.tolist())
    elif typ == "keyword":
        col.keywords.extend(part)
    else:
        for row in part:
            col.tags.add().tags.extend(row)


def _attrs_from_pb(columns, n: int, schema: Optional[dict]) -> dict:
    """GetResponse.attributes as a dict name -> values (see :class:`Items`). With no rows no list
    holds values: ``schema`` (name -> type) then says what empty value each gets."""
    out = {}
    for col in columns:
        filled = [f for f in ("ints", "floats", "bools", "keywords", "tags")
                  if len(getattr(col, f))]
        if len(filled) > 1 or (n and not filled):
            raise QuiverError(grpc.StatusCode.INTERNAL,
                              f"malformed get response: attribute {col.name!r} holds "
                              f"{' and '.join(filled) or 'no values'} for {n} ids")
        field = filled[0] if filled else {
            "int64": "ints", "float": "floats", "bool": "bools", "keyword": "keywords",
            "tags": "tags"}.get((schema or {}).get(col.name, "int64"), "ints")
        if len(getattr(col, field)) != n:
            raise QuiverError(grpc.StatusCode.INTERNAL,
                              f"malformed get response: attribute {col.name!r} has "
                              f"{len(getattr(col, field))} values for {n} ids")
        if field == "ints":
            out[col.name] = np.array(col.ints, dtype=np.int64)
        elif field == "floats":
            out[col.name] = np.array(col.floats, dtype=np.float64)
        elif field == "bools":
            out[col.name] = np.array(col.bools, dtype=bool)
        elif field == "keywords":
            out[col.name] = list(col.keywords)
        else:
            out[col.name] = [list(t.tags) for t in col.tags]
    return out


def _health_pb2():
    """The grpc.health.v1 messages.

    Our committed stub and the grpcio-health-checking package register the same protobuf symbols
    in the process-wide descriptor pool, which refuses a second, different copy: reuse theirs when
    it is already loaded (or when ours cannot register), ours otherwise.
    """
    theirs = sys.modules.get("grpc_health.v1.health_pb2")
    if theirs is not None:
        return theirs
    try:
        from ._pb.grpc.health.v1 import health_pb2

        return health_pb2
    except TypeError:  # "duplicate symbol": someone else registered grpc.health.v1
        from grpc_health.v1 import health_pb2  # type: ignore[import-not-found]

        return health_pb2


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds "authorization: Bearer TOKEN" to every call (the token is never printed)."""

    def __init__(self, token: str):
        self._md = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "_BearerToken(<hidden>)"

    def _details(self, d):
        md = list(d.metadata or []) + [self._md]
        return d._replace(metadata=md) if hasattr(d, "_replace") else _Details(d, md)

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_stream_unary(self, cont, d, it):
        return cont(self._details(d), it)

    def intercept_stream_stream(self, cont, d, it):
        return cont(self._details(d), it)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


class Client:
    """A connection to quiverd.

    ``timeout`` (seconds, None = no deadline) is the deadline of each unary call (search, create,
    describe, ...). The streaming calls ``upsert`` and ``build`` run as long as the data needs
    unless given their own ``timeout=``. Every method raises :class:`QuiverError` on failure.

    Thread-safe (one gRPC channel shared by all calls); use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, target: str = "127.0.0.1:7070", timeout: Optional[float] = 30.0,
                 *, options: Optional[Sequence[Tuple[str, object]]] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, token: Optional[str] = None):
        """``tls_ca`` (a PEM file of the CA that signed the server's certificate) makes the
        channel TLS; ``tls_cert`` + ``tls_key`` add a client certificate (mutual TLS). ``token``
        is sent as "authorization: Bearer TOKEN" on every call (quiverd --auth-tokens); it
        defaults to $QUIVER_TOKEN."""
        self.target = target
        self.timeout = timeout
        # No client-side size limits (gRPC Python's default refuses responses over 4 MiB): the
        # server decides what it accepts (--max-message-mb) and answers RESOURCE_EXHAUSTED.
        opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        opts += list(options or [])
        if (tls_cert is None) != (tls_key is None):
            raise _invalid("a client certificate and its key go together: give both")
        if tls_ca is not None:
            def read(path: Optional[str]) -> Optional[bytes]:
                if path is None:
                    return None
                with open(path, "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert))
            channel = grpc.secure_channel(target, creds, options=opts)
        elif tls_cert is not None:
            raise _invalid("a client certificate needs TLS: give tls_ca too")
        else:
            channel = grpc.insecure_channel(target, options=opts)
        token = token if token is not None else os.environ.get("QUIVER_TOKEN") or None
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        self._raw_channel = channel
        self._channel = channel
        self._stub = pb_grpc.RetrievalStub(self._channel)
        self._health_check = None
        self._health_watch = None

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(target={self.target!r}, timeout={self.timeout!r})"

    def _deadline(self, timeout, streaming: bool = False):
        if timeout is _DEFAULT:
            return None if streaming else self.timeout
        return timeout

    def _unary(self, method, request, timeout):
        try:
            return method(request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            raise QuiverError._from_rpc(e) from e

    # -- search ---------------------------------------------------------------------------------

    def search(self, collection: str, queries: Optional[ArrayLike] = None, k: int = 10,
               nprobe: int = 0, exact: bool = False, *, rerank: Optional[dict] = None,
               allow_partial: bool = False, version: int = 0,
               query_ids: Optional[ArrayLike] = None, include_self: bool = False,
               ef_search: int = 0, filter: Optional[str] = None, filter_path: str = "auto",
               timeout=_DEFAULT) -> SearchResult:
        """Nearest neighbours of ``queries`` (float32 [n, dim]; a 1-D array is one query).

        Returns ``(ids, scores)``: int64 [n, k] and float32 [n, k], best first per row, padded
        with id -1 when fewer than k vectors are reachable. ``nprobe`` (IVF) or ``ef_search``
        (HNSW) 0 uses the collection's default (sending the other one is INVALID_ARGUMENT);
        ``exact`` brute-forces over the stored vectors.

        ``allow_partial`` (through a router): when a shard has no replica answering in time,
        answer from the shards that did instead of raising UNAVAILABLE; the result's
        ``missing_shards`` names the others (the pair is a :class:`SearchResult`). A single node
        ignores it.

        ``version`` pins the search to a data version of the collection (0 = the serving one):
        one held beside the serving version (staged, or the previous one after a flip) answers
        too; any other raises FAILED_PRECONDITION. The result's ``version`` names the data
        version that answered.

        ``rerank`` turns on the server's rerank stage, a dict with any of ``candidates`` (k' per
        query), ``refine`` (exact re-score), ``weights`` (at most one today), ``mmr_lambda``,
        ``allow_ids``, ``deny_ids`` (see RerankOptions in proto/quiver/v1/retrieval.proto).

        ``query_ids`` (int64 [n]) instead of ``queries``: item-to-item search ("more like this
        item"), the stored vectors of these ids are the queries; each row leaves its own id out
        unless ``include_self``. An id not in the collection gets a row of padding and is listed
        in the result's ``unknown_queries``; only when every id is unknown does it raise
        NOT_FOUND.

        ``filter``: only items whose attributes match this expression are answered, e.g.
        ``'category in (3, 7) and price < 20 and not sold_out and tags has "summer"'`` (rows
        with fewer matches than k are padded). A malformed filter raises INVALID_ARGUMENT naming
        its column; one on a collection without attributes FAILED_PRECONDITION.
        ``filter_path``: "auto" (the server picks by the filter's selectivity), "exact" (an exact
        scan of the matching items) or "index" (the index restricted to them).
        """
        if (queries is None) == (query_ids is None):
            raise _invalid("pass queries or query_ids (one of them)")
        fpath = _FILTER_PATHS.get(str(filter_path).lower())
        if fpath is None:
            raise _invalid(f"unknown filter_path {filter_path!r}: use one of "
                           f"{', '.join(_FILTER_PATHS)}")
        if filter is not None and not isinstance(filter, str):
            raise _invalid(f"filter must be a str, got {type(filter).__name__}")
        if query_ids is not None:
            qi = _as_ids(query_ids)
            n = len(qi)
            req = _msg(pb.SearchRequest, collection=collection, k=k, nprobe=nprobe, exact=exact,
                       allow_partial=allow_partial, version=version, include_self=include_self,
                       ef_search=ef_search)
            req.query_ids.extend(qi.tolist())
        else:
            if include_self:
                raise _invalid("include_self goes with query_ids")
            q = _as_matrix(queries, "queries")
            n, dim = q.shape
            req = _msg(pb.SearchRequest, collection=collection, dim=dim, k=k, nprobe=nprobe,
                       exact=exact, allow_partial=allow_partial, version=version,
                       ef_search=ef_search)
            _set_floats(req, "queries", q)
        if filter is not None:
            req.filter = filter
        req.filter_path = fpath
        if rerank is not None:
            known = {"candidates", "refine", "weights", "mmr_lambda", "allow_ids", "deny_ids"}
            unknown = set(rerank) - known
            if unknown:
                raise _invalid(f"unknown rerank option(s) {sorted(unknown)}; use {sorted(known)}")
            try:
                req.rerank.CopyFrom(pb.RerankOptions(**{
                    key: (list(val) if key in ("weights", "allow_ids", "deny_ids") else val)
                    for key, val in rerank.items()}))
            except (TypeError, ValueError) as exc:
                raise _invalid(f"bad rerank options: {exc}") from None
        resp = self._unary(self._stub.Search, req, timeout)
        rk, rn = resp.k, resp.num_queries
        if len(resp.ids) != rn * rk or len(resp.scores) != rn * rk or rn != n:
            raise QuiverError(grpc.StatusCode.INTERNAL,
                              f"malformed search response: {rn} queries x k {rk} but "
                              f"{len(resp.ids)} ids and {len(resp.scores)} scores for {n} queries")
        ids = np.array(resp.ids, dtype=np.int64).reshape(rn, rk)
        scores = np.array(resp.scores, dtype=np.float32).reshape(rn, rk)
        return SearchResult(ids, scores, resp.missing_shards, resp.version, resp.unknown_queries)

    def get(self, collection: str, ids: ArrayLike, fields: Optional[Sequence[str]] = None, *,
            timeout=_DEFAULT) -> Items:
        """Fetches stored items by id (int64 [n]; repeats are answered each time): an
        :class:`Items` with the ids found, their vectors, features and attributes (``fields``:
        any of "vector", "features", "attributes"; None = all) and the ids not in the collection
        (not an error)."""
        i = _as_ids(ids)
        if isinstance(fields, str):
            fields = [fields]
        req = _msg(pb.GetRequest, collection=collection, fields=list(fields or []))
        req.ids.extend(i.tolist())
        resp = self._unary(self._stub.Get, req, timeout)
        n, d, nf = len(resp.ids), resp.dim, resp.num_features
        if (resp.vectors and len(resp.vectors) != n * d) or \
                (resp.features and len(resp.features) != n * nf):
            raise QuiverError(grpc.StatusCode.INTERNAL,
                              f"malformed get response: {n} ids, {len(resp.vectors)} vector "
                              f"floats (dim {d}), {len(resp.features)} feature floats")
        want = set(fields or ("vector", "features", "attributes"))
        vecs = np.array(resp.vectors, dtype=np.float32).reshape(n, d) if "vector" in want \
            else None
        feats = np.array(resp.features, dtype=np.float32).reshape(n, nf) if "features" in want \
            else None
        attrs = None
        if "attributes" in want and resp.attributes:
            # No rows: no list holds values, so the schema says each attribute's type.
            schema = self.describe(collection, timeout=timeout).schema if n == 0 else None
            attrs = _attrs_from_pb(resp.attributes, n, schema)
        return Items(np.array(resp.ids, dtype=np.int64), vecs, feats,
                     np.array(resp.missing_ids, dtype=np.int64), attrs)

    # -- writes ---------------------------------------------------------------------------------

    def upsert(self, collection: str, ids: ArrayLike, vectors: ArrayLike,
               chunk_bytes: int = 4 << 20, *, features: Optional[ArrayLike] = None,
               attributes: Optional[dict] = None, timeout=_DEFAULT) -> int:
        """Adds or replaces vectors (float32 [n, dim]) under ``ids`` (int64 [n]), with each
        item's ``features`` (float32 [n, n_features]; None = zeros) for the rerank blend.

        ``attributes``: a dict name -> n values for the collection's attributes (any subset; an
        attribute left out gets its default, 0, 0.0, False, "" or no tags: an upsert replaces
        the whole item). The values follow the schema's type: integers for int64, numbers for
        float, booleans for bool (numpy arrays or sequences), a sequence of str for keyword, a
        sequence of lists of str for tags, e.g. ``{"category": np.array([3, 7]), "tags":
        [["a"], ["b", "c"]]}``. The schema comes from a :meth:`describe` of the collection; a
        name not in it or a value of the wrong type raises INVALID_ARGUMENT before any write.

        Streams them in messages of about ``chunk_bytes`` each; returns the number of vectors in
        the collection afterwards. Acknowledged once the whole stream is applied and saved.
        """
        v = _as_matrix(vectors, "vectors")
        i = _as_ids(ids)
        if len(i) != len(v):
            raise _invalid(f"{len(i)} ids for {len(v)} vectors")
        if chunk_bytes <= 0:
            raise _invalid(f"chunk_bytes must be positive, got {chunk_bytes}")
        f = None
        if features is not None:
            f = _as_matrix(features, "features")
            if len(f) != len(v):
                raise _invalid(f"{len(f)} feature rows for {len(v)} vectors")
        cols: List[Tuple[str, str, object]] = []
        attr_row_bytes = 0
        if attributes:
            if not isinstance(attributes, dict):
                raise _invalid("attributes must be a dict name -> values")
            schema = self.describe(collection).schema
            if not schema:
                raise QuiverError(grpc.StatusCode.FAILED_PRECONDITION,
                                  f"collection '{collection}' has no attributes (declare them at "
                                  "create: attributes=[(name, type), ...])")
            for name, values in attributes.items():
                if name not in schema:
                    raise _invalid(f"unknown attribute {name!r}: collection '{collection}' has "
                                   + ", ".join(f"{a} ({t})" for a, t in schema.items()))
                cols.append((name, schema[name], _attr_column(name, schema[name], values, len(v))))
            for _, typ, vals in cols:  # about what a row's values take on the wire
                if typ in ("keyword", "tags") and len(vals):
                    sample = vals[:1000]
                    chars = sum(len(x) + 2 if typ == "keyword" else sum(len(t) + 2 for t in x) + 2
                                for x in sample)
                    attr_row_bytes += chars // len(sample) + 1
                else:
                    attr_row_bytes += {"int64": 10, "float": 8, "bool": 1}.get(typ, 2)
        rows = max(1, chunk_bytes // max(1, (v.shape[1] + (f.shape[1] if f is not None else 0))
                                            * 4 + 8 + attr_row_bytes))

        _msg(pb.UpsertRequest, collection=collection)  # a bad type fails here, not in the stream

        def chunks() -> Iterator[pb.UpsertRequest]:
            if len(v) == 0:  # one (empty) message, so the server names the problem
                yield pb.UpsertRequest(collection=collection)
                return
            for start in range(0, len(v), rows):
                m = pb.UpsertRequest(collection=collection if start == 0 else "")
                m.ids.extend(i[start:start + rows].tolist())
                _set_floats(m, "vectors", v[start:start + rows])
                if f is not None:
                    _set_floats(m, "features", f[start:start + rows])
                for name, typ, vals in cols:
                    col = m.attributes.add(name=name)
                    _fill_column(col, typ, vals, start, start + rows)
                yield m

        try:
            resp = self._stub.Upsert(chunks(), timeout=self._deadline(timeout, streaming=True))
        except grpc.RpcError as e:
            raise QuiverError._from_rpc(e) from e
        return int(resp.count)

    def delete(self, collection: str, ids: ArrayLike, *, timeout=_DEFAULT) -> Tuple[int, int]:
        """Removes ``ids``; returns ``(deleted, count)``: how many were present, and how many
        vectors the collection holds afterwards."""
        req = _msg(pb.DeleteRequest, collection=collection)
        req.ids.extend(_as_ids(ids).tolist())
        resp = self._unary(self._stub.Delete, req, timeout)
        return int(resp.deleted), int(resp.count)

    # -- collections ----------------------------------------------------------------------------

    def create(self, name: str, dim: int, metric: str = "l2", spec: str = "Flat",
               default_nprobe: int = 0, train_sample: int = 0, n_features: int = 0, *,
               device: str | None = None, deferred_deletes: bool = False, shards: int = 0,
               replicas: int = 0, default_ef_search: int = 0, attributes=None,
               timeout=_DEFAULT) -> CollectionInfo:
        """Creates a collection. ``metric``: "l2" (squared distance, ascending), "ip" or
        "cosine" (descending). ``spec``: Flat | IVF<n>,Flat | IVF<n>,SQ8 | IVF<n>,PQ<m> |
        HNSW<M> | HNSW<M>,SQ8 (graphs serve from the CPU only).
        ``default_nprobe`` (IVF) 0 = the server's default (16); ``default_ef_search`` (HNSW) 0 =
        16; ``train_sample`` 0 = 256 per list.
        ``device``: "auto", "cpu" or "gpu" (None = the server's ``--device``);
        ``deferred_deletes``: hide deletes by tombstones until the next save or build.
        ``shards``, ``replicas`` (sent to a router; 0 = 1): split the items over ``shards``
        shards by a hash of their id, each held by ``replicas`` shard servers. A single node
        refuses more than 1 of either (INVALID_ARGUMENT).
        ``attributes``: item attributes for filtered search (at most 32, fixed for the
        collection's life), as (name, type) pairs or a dict name -> type, type one of "int64",
        "float", "bool", "keyword", "tags": e.g. ``[("category", "int64"), ("price", "float"),
        ("tags", "tags")]``. Names are [A-Za-z_][A-Za-z0-9_]* and not a filter keyword (the
        server checks them: INVALID_ARGUMENT naming the attribute)."""
        m = _METRICS.get(str(metric).lower())
        if m is None:
            raise _invalid(f"unknown metric {metric!r}: use one of {', '.join(_METRICS)}")
        dev = 0
        if device is not None:
            dev = _DEVICES.get(str(device).lower())
            if dev is None:
                raise _invalid(f"unknown device {device!r}: use one of {', '.join(_DEVICES)}")
        req = _msg(pb.CreateCollectionRequest, name=name, dim=dim, metric=m, index_spec=spec,
                   default_nprobe=default_nprobe, train_sample=train_sample,
                   n_features=n_features, device=dev, deferred_deletes=deferred_deletes,
                   shards=shards, replicas=replicas, default_ef_search=default_ef_search)
        for aname, atype in _attr_schema(attributes):
            req.attributes.add(name=aname, type=_ATTR_TYPES[atype])
        return CollectionInfo._from_pb(self._unary(self._stub.CreateCollection, req, timeout))

    def drop(self, name: str, *, timeout=_DEFAULT) -> None:
        """Deletes a collection and its files."""
        self._unary(self._stub.DropCollection, _msg(pb.DropCollectionRequest, name=name), timeout)

    def describe(self, name: str, *, timeout=_DEFAULT) -> CollectionInfo:
        req = _msg(pb.DescribeCollectionRequest, name=name)
        return CollectionInfo._from_pb(self._unary(self._stub.DescribeCollection, req, timeout))

    def list(self, *, timeout=_DEFAULT) -> List[CollectionInfo]:
        """Every collection, sorted by name."""
        resp = self._unary(self._stub.ListCollections, pb.ListCollectionsRequest(), timeout)
        return [CollectionInfo._from_pb(c) for c in resp.collections]

    def cluster_status(self, *, timeout=_DEFAULT) -> ClusterStatus:
        """The fleet as a router sees it (ListCollections): its live shard servers and every
        collection's replicas with their state, applied/log sequence and count. From a single
        node: no nodes, and its collections as 1 shard with no replicas."""
        resp = self._unary(self._stub.ListCollections, pb.ListCollectionsRequest(), timeout)
        return ClusterStatus(nodes=tuple(NodeInfo._from_pb(n) for n in resp.nodes),
                             collections=tuple(CollectionInfo._from_pb(c)
                                               for c in resp.collections))

    def build(self, name: str, progress: Optional[ProgressFn] = None, *,
              recall_floor: float = 0.0, target_recall: float = 0.0, eval_queries: int = 0,
              eval_k: int = 0, timeout=_DEFAULT) -> CollectionInfo:
        """Trains and builds the collection's index from its stored vectors.

        ``progress(phase, done, total)`` is called for every progress message the server sends
        (phases "sample", "train", "add", "evaluate", "tune", "save", then "done"). If it raises,
        the call is cancelled (which cancels the build; the previous index stays) and the
        exception propagates. Returns the collection's description after the build; its
        ``build_recall`` is the new index's measured recall@``eval_k`` (default 10) on
        ``eval_queries`` (default 200) stored vectors used as queries.

        ``recall_floor`` in (0, 1]: the swap is refused below it (QuiverError
        FAILED_PRECONDITION) and the previous index keeps serving. ``target_recall`` in (0, 1]:
        the smallest nprobe reaching it becomes the collection's default nprobe.
        """
        req = _msg(pb.BuildIndexRequest, collection=name, recall_floor=recall_floor,
                   target_recall=target_recall, eval_queries=eval_queries, eval_k=eval_k)
        call = self._stub.BuildIndex(req, timeout=self._deadline(timeout, streaming=True))
        final = None
        try:
            while True:
                try:
                    msg = next(call)
                except StopIteration:
                    break
                except grpc.RpcError as e:
                    raise QuiverError._from_rpc(e) from e
                if progress is not None:
                    progress(msg.phase, int(msg.done), int(msg.total))
                if msg.finished:
                    final = msg
        except BaseException:
            call.cancel()  # a no-op once the call has ended; otherwise cancels the build
            raise
        if final is None or not final.HasField("info"):
            raise QuiverError(grpc.StatusCode.INTERNAL,
                              f"build of '{name}' ended without its final message")
        return CollectionInfo._from_pb(final.info)

    def push(self, name: str, index_dir: Optional[str] = None, *,
             server_path: Optional[str] = None, create: bool = False, recall_floor: float = 0.0,
             target_recall: float = 0.0, eval_queries: int = 0, eval_k: int = 0,
             chunk_bytes: int = 4 << 20, stage: bool = False, version: int = 0,
             timeout=_DEFAULT) -> PushResult:
        """Swaps an index built offline (``quiver index build --out DIR``) into ``name``
        (ImportIndex).

        Give ``index_dir`` (a local directory: its files are streamed in ``chunk_bytes`` chunks,
        each with its CRC-32) or ``server_path`` (a directory the server reads itself; quiverd
        needs ``--import-root``). ``create`` creates the collection from the index when absent.
        The recall options are those of :meth:`build`. Returns the collection's description and
        the measured recall (a :class:`PushResult` pair whose ``version`` is the data version the
        import holds).

        ``stage=True`` holds the index as a new data version beside the serving one instead of
        swapping it in (searches with ``version=`` get it, the others the serving one; writes
        reach both; :meth:`rollout` flips to it or aborts it): ``version`` is its number, above
        the serving one (0 = the serving one + 1). The memory budget counts both. The collection
        must exist (no ``create``); a plain push while a version is staged raises
        FAILED_PRECONDITION.
        """
        if (index_dir is None) == (server_path is None):
            raise _invalid("push: give exactly one of index_dir and server_path")
        if version and not stage:
            raise _invalid("push: version goes with stage=True")
        files: List[str] = []
        if index_dir is not None:
            try:
                with open(os.path.join(index_dir, "MANIFEST.json"), encoding="utf-8") as f:
                    vdir = json.load(f)["dir"]
            except (OSError, ValueError, KeyError) as e:
                raise _invalid(f"push: {index_dir} is not an index directory "
                               f"(quiver index build --out DIR): {e}") from e
            for fn in ("index.faiss", "vectors.npy", "ids.npy", "features.npy", "MANIFEST.json"):
                if os.path.exists(os.path.join(index_dir, vdir, fn)):
                    files.append(f"{vdir}/{fn}")
            files.append("MANIFEST.json")  # last: the server sees it after what it names
        header = dict(collection=name, server_path=server_path or "", create=create,
                      recall_floor=recall_floor, target_recall=target_recall,
                      eval_queries=eval_queries, eval_k=eval_k, stage=stage, version=version)
        _msg(pb.ImportIndexRequest, **header)  # a bad type fails here, not in the stream

        def chunks() -> Iterator[pb.ImportIndexRequest]:
            first = dict(header)
            if not files:
                yield _msg(pb.ImportIndexRequest, **first)
                return
            for rel in files:
                with open(os.path.join(index_dir, rel), "rb") as f:
                    off = 0
                    while True:
                        data = f.read(chunk_bytes)
                        if not data and off > 0:
                            break
                        yield _msg(pb.ImportIndexRequest, file=rel, offset=off, data=data,
                                   crc32=zlib.crc32(data) & 0xFFFFFFFF, **first)
                        first = {}
                        off += len(data)
                        if len(data) < chunk_bytes:
                            break

        try:
            resp = self._stub.ImportIndex(chunks(),
                                          timeout=self._deadline(timeout, streaming=True))
        except grpc.RpcError as e:
            raise QuiverError._from_rpc(e) from e
        return PushResult(CollectionInfo._from_pb(resp.info), resp.recall, resp.version)

    def rollout(self, name: str, action: str, version: int = 0, *, recall_floor: float = 0.0,
                min_ready: int = 0, hold_s: float = 0.0, timeout=_DEFAULT) -> RolloutStatus:
        """Moves between the data versions of ``name`` (Rollout) and says where it stands.

        ``action``: "flip" (the staged version serves; the one served until now is kept as
        previous; ``version`` != 0: the staged one must be that one), "abort" (drop the staged
        version), "rollback" (the previous version serves again; the one rolled back from is
        dropped), "release" (drop the previous version), or "status" (change nothing).
        Raises FAILED_PRECONDITION when nothing of that kind is held (or another version is),
        NOT_FOUND for an unknown collection.

        Through a router the actions are the fleet's (docs/rollout.md): "begin" starts a fleet
        rollout of ``version`` (0 = the collection's + 1) with ``recall_floor``, ``min_ready``
        and ``hold_s``, and answers every replica to push to (:meth:`rollout_fleet` does all of
        it); "flip" is the controller's there (INVALID_ARGUMENT). A single node answers "begin"
        with UNIMPLEMENTED.
        """
        a = _ROLLOUT_ACTIONS.get(str(action).lower())
        if a is None:
            raise _invalid(f"unknown rollout action {action!r}: use one of "
                           f"{', '.join(_ROLLOUT_ACTIONS)}")
        req = _msg(pb.RolloutRequest, collection=name, action=a, version=version,
                   recall_floor=recall_floor, min_ready=min_ready, hold_s=hold_s)
        return RolloutStatus._from_pb(self._unary(self._stub.Rollout, req, timeout))

    def rollout_fleet(self, name: str, index_dir: Optional[str] = None, *,
                      server_path: Optional[str] = None, version: int = 0,
                      recall_floor: float = 0.0, min_ready: int = 0, hold_s: float = 0.0,
                      wait_s: float = 600.0, chunk_bytes: int = 4 << 20) -> RolloutStatus:
        """A whole fleet rollout through a router, as ``quiver rollout NAME --index DIR``: begins
        it, pushes ``DIR/shard<k>`` (``quiver index build --shards S``) to every in-sync replica
        of shard k as the staged version (also to replicas that appear meanwhile, e.g. re-created
        after a kill), and waits up to ``wait_s`` for the controller's flip and for every router
        to pin its queries to the new version. Returns the status once flipped; raises QuiverError (the rollout aborted by the controller, e.g. a recall
        floor missed: FAILED_PRECONDITION with its message; not ready in time: DEADLINE_EXCEEDED;
        a push that failed: its error, after aborting the rollout)."""
        if (index_dir is None) == (server_path is None):
            raise _invalid("give exactly one of index_dir and server_path")
        st = self.rollout(name, "begin", version, recall_floor=recall_floor,
                          min_ready=min_ready, hold_s=hold_s)
        v, base, pushed = st.rollout_version, index_dir or server_path, set()
        until = time.monotonic() + wait_s
        try:
            while True:
                for r in st.replicas:
                    key = (r.node, r.shard)
                    if (key in pushed or r.state != "in-sync" or r.version == v or
                            (r.beside_version == v and r.beside_state)):
                        continue
                    d = os.path.join(base, "shard%d" % r.shard)
                    with Client(r.addr, self.timeout) as node:
                        node.push("%s.shard%d" % (name, r.shard), d if index_dir else None,
                                  server_path=None if index_dir else d, stage=True, version=v,
                                  chunk_bytes=chunk_bytes, timeout=None)
                    pushed.add(key)
                # Flipped, and every router pins its queries to it (within one map poll).
                if st.state in ("flipped", "done") and (
                        st.version != v or st.routers_on_version >= st.routers or
                        time.monotonic() > until):
                    return st
                if st.state in ("aborted", "rolled-back"):
                    raise QuiverError(grpc.StatusCode.FAILED_PRECONDITION,
                                      "rollout of version %d %s: %s" % (v, st.state, st.message))
                if time.monotonic() > until:
                    raise QuiverError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                      "version %d not ready on every shard within %.0f s: still "
                                      "%s (rollout(name, 'abort') drops it)" % (v, wait_s, st.state))
                time.sleep(0.2)
                st = self.rollout(name, "status")
        except QuiverError as e:
            if e.code not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED):
                try:
                    self.rollout(name, "abort")
                except QuiverError:
                    pass
            raise

    # -- health ---------------------------------------------------------------------------------

    def health(self, service: str = "", *, timeout=_DEFAULT) -> bool:
        """grpc.health.v1 Check: True when ``service`` ("" = the server, or
        "quiver.v1.Retrieval") is SERVING, False otherwise (e.g. NOT_SERVING while shutting
        down). An unknown service raises QuiverError NOT_FOUND, an unreachable server
        UNAVAILABLE."""
        h = _health_pb2()
        if self._health_check is None:
            self._health_check = self._channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=h.HealthCheckRequest.SerializeToString,
                response_deserializer=h.HealthCheckResponse.FromString)
        resp = self._unary(self._health_check, _msg(h.HealthCheckRequest, service=service),
                           timeout)
        return resp.status == h.HealthCheckResponse.SERVING

    def health_watch(self, service: str = "", timeout: Optional[float] = None) -> Iterator[str]:
        """grpc.health.v1 Watch: a generator of ``service``'s serving status ("" = the server, or
        "quiver.v1.Retrieval"): "SERVING" or "NOT_SERVING" at once, then one string per change
        (the server sends only changes). An unknown service yields "SERVICE_UNKNOWN" and the
        stream stays open. "UNKNOWN" stands for a status this client does not know.

        It ends (returns) when the server ends the stream after "NOT_SERVING" (quiverd's stop:
        UNAVAILABLE "the server is shutting down") or with OK, and when ``timeout`` seconds (None
        = no deadline; the Client's timeout does not apply) pass after a first status. Otherwise
        it raises QuiverError: UNAVAILABLE for a server that cannot be reached or went away while
        serving, UNIMPLEMENTED for one without Watch. Closing the generator (``break`` out of a
        loop over it, or ``close()``) cancels the call.
        """
        h = _health_pb2()
        if self._health_watch is None:
            self._health_watch = self._channel.unary_stream(
                "/grpc.health.v1.Health/Watch",
                request_serializer=h.HealthCheckRequest.SerializeToString,
                response_deserializer=h.HealthCheckResponse.FromString)
        names = {h.HealthCheckResponse.SERVING: "SERVING",
                 h.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
                 h.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN"}
        call = self._health_watch(_msg(h.HealthCheckRequest, service=service), timeout=timeout)
        last = None
        try:
            while True:
                try:
                    resp = next(call)
                except StopIteration:
                    return
                except grpc.RpcError as e:
                    code = e.code() if callable(getattr(e, "code", None)) else None
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED and last is not None:
                        return  # the timeout passed
                    if code == grpc.StatusCode.UNAVAILABLE and last == "NOT_SERVING":
                        return  # the server's stop ended it
                    raise QuiverError._from_rpc(e) from e
                last = names.get(resp.status, "UNKNOWN")
                yield last
        finally:
            call.cancel()  # a no-op once the call has ended
