from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_IP: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]

class Device(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_UNSPECIFIED: _ClassVar[Device]
    DEVICE_AUTO: _ClassVar[Device]
    DEVICE_CPU: _ClassVar[Device]
    DEVICE_GPU: _ClassVar[Device]

class AttributeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTE_TYPE_UNSPECIFIED: _ClassVar[AttributeType]
    ATTRIBUTE_INT64: _ClassVar[AttributeType]
    ATTRIBUTE_FLOAT: _ClassVar[AttributeType]
    ATTRIBUTE_BOOL: _ClassVar[AttributeType]
    ATTRIBUTE_KEYWORD: _ClassVar[AttributeType]
    ATTRIBUTE_TAGS: _ClassVar[AttributeType]

class FilterPath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_PATH_AUTO: _ClassVar[FilterPath]
    FILTER_PATH_EXACT: _ClassVar[FilterPath]
    FILTER_PATH_INDEX: _ClassVar[FilterPath]

class CollectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLECTION_STATE_UNSPECIFIED: _ClassVar[CollectionState]
    COLLECTION_STATE_NOT_BUILT: _ClassVar[CollectionState]
    COLLECTION_STATE_READY: _ClassVar[CollectionState]
    COLLECTION_STATE_BUILDING: _ClassVar[CollectionState]

class RolloutAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_ACTION_UNSPECIFIED: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_STATUS: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_FLIP: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_ABORT: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_ROLLBACK: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_RELEASE: _ClassVar[RolloutAction]
    ROLLOUT_ACTION_BEGIN: _ClassVar[RolloutAction]
METRIC_UNSPECIFIED: Metric
METRIC_L2: Metric
METRIC_IP: Metric
METRIC_COSINE: Metric
DEVICE_UNSPECIFIED: Device
DEVICE_AUTO: Device
DEVICE_CPU: Device
DEVICE_GPU: Device
ATTRIBUTE_TYPE_UNSPECIFIED: AttributeType
ATTRIBUTE_INT64: AttributeType
ATTRIBUTE_FLOAT: AttributeType
ATTRIBUTE_BOOL: AttributeType
ATTRIBUTE_KEYWORD: AttributeType
ATTRIBUTE_TAGS: AttributeType
FILTER_PATH_AUTO: FilterPath
FILTER_PATH_EXACT: FilterPath
FILTER_PATH_INDEX: FilterPath
COLLECTION_STATE_UNSPECIFIED: CollectionState
COLLECTION_STATE_NOT_BUILT: CollectionState
COLLECTION_STATE_READY: CollectionState
COLLECTION_STATE_BUILDING: CollectionState
ROLLOUT_ACTION_UNSPECIFIED: RolloutAction
ROLLOUT_ACTION_STATUS: RolloutAction
ROLLOUT_ACTION_FLIP: RolloutAction
ROLLOUT_ACTION_ABORT: RolloutAction
ROLLOUT_ACTION_ROLLBACK: RolloutAction
ROLLOUT_ACTION_RELEASE: RolloutAction
ROLLOUT_ACTION_BEGIN: RolloutAction

class AttributeField(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: AttributeType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[AttributeType, str]] = ...) -> None: ...

class TagList(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class AttributeColumn(_message.Message):
    __slots__ = ("name", "ints", "floats", "bools", "keywords", "tags")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    BOOLS_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    ints: _containers.RepeatedScalarFieldContainer[int]
    floats: _containers.RepeatedScalarFieldContainer[float]
    bools: _containers.RepeatedScalarFieldContainer[bool]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedCompositeFieldContainer[TagList]
    def __init__(self, name: _Optional[str] = ..., ints: _Optional[_Iterable[int]] = ..., floats: _Optional[_Iterable[float]] = ..., bools: _Optional[_Iterable[bool]] = ..., keywords: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[_Union[TagList, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "dim", "k", "nprobe", "rerank", "query_ids", "include_self", "ef_search", "filter", "filter_path", "exact", "allow_partial", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    QUERY_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SELF_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_PATH_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedScalarFieldContainer[float]
    dim: int
    k: int
    nprobe: int
    rerank: RerankOptions
    query_ids: _containers.RepeatedScalarFieldContainer[int]
    include_self: bool
    ef_search: int
    filter: str
    filter_path: FilterPath
    exact: bool
    allow_partial: bool
    version: int
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[float]] = ..., dim: _Optional[int] = ..., k: _Optional[int] = ..., nprobe: _Optional[int] = ..., rerank: _Optional[_Union[RerankOptions, _Mapping]] = ..., query_ids: _Optional[_Iterable[int]] = ..., include_self: _Optional[bool] = ..., ef_search: _Optional[int] = ..., filter: _Optional[str] = ..., filter_path: _Optional[_Union[FilterPath, str]] = ..., exact: _Optional[bool] = ..., allow_partial: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class RerankOptions(_message.Message):
    __slots__ = ("candidates", "refine", "weights", "mmr_lambda", "allow_ids", "deny_ids")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REFINE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MMR_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    ALLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    DENY_IDS_FIELD_NUMBER: _ClassVar[int]
    candidates: int
    refine: bool
    weights: _containers.RepeatedScalarFieldContainer[float]
    mmr_lambda: float
    allow_ids: _containers.RepeatedScalarFieldContainer[int]
    deny_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, candidates: _Optional[int] = ..., refine: _Optional[bool] = ..., weights: _Optional[_Iterable[float]] = ..., mmr_lambda: _Optional[float] = ..., allow_ids: _Optional[_Iterable[int]] = ..., deny_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("k", "num_queries", "ids", "scores", "missing_shards", "version", "unknown_queries")
    K_FIELD_NUMBER: _ClassVar[int]
    NUM_QUERIES_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_QUERIES_FIELD_NUMBER: _ClassVar[int]
    k: int
    num_queries: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    version: int
    unknown_queries: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, k: _Optional[int] = ..., num_queries: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ..., missing_shards: _Optional[_Iterable[int]] = ..., version: _Optional[int] = ..., unknown_queries: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index_spec", "default_nprobe", "train_sample", "n_features", "device", "deferred_deletes", "shards", "replicas", "default_ef_search", "attributes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_SPEC_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NPROBE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_DELETES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index_spec: str
    default_nprobe: int
    train_sample: int
    n_features: int
    device: Device
    deferred_deletes: bool
    shards: int
    replicas: int
    default_ef_search: int
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeField]
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index_spec: _Optional[str] = ..., default_nprobe: _Optional[int] = ..., train_sample: _Optional[int] = ..., n_features: _Optional[int] = ..., device: _Optional[_Union[Device, str]] = ..., deferred_deletes: _Optional[bool] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., default_ef_search: _Optional[int] = ..., attributes: _Optional[_Iterable[_Union[AttributeField, _Mapping]]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "index_spec", "state", "default_nprobe", "count", "indexed", "nlist", "memory_bytes", "vector_bytes", "index_bytes", "index_version", "n_features", "device", "gpu", "device_bytes", "placement", "tombstones", "gpu_fallbacks", "deferred_deletes", "build_recall", "build_recall_k", "build_recall_nprobe", "snapshot_version", "storage_note", "wal_bytes", "wal_records", "batched_requests", "batches", "batched_queries", "batch_expired", "shards", "replicas", "replica_info", "version", "versions", "default_ef_search", "attributes", "attribute_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NPROBE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    NLIST_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    VECTOR_BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    DEVICE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    GPU_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_DELETES_FIELD_NUMBER: _ClassVar[int]
    BUILD_RECALL_FIELD_NUMBER: _ClassVar[int]
    BUILD_RECALL_K_FIELD_NUMBER: _ClassVar[int]
    BUILD_RECALL_NPROBE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORAGE_NOTE_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    WAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    BATCHED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BATCHED_QUERIES_FIELD_NUMBER: _ClassVar[int]
    BATCH_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_INFO_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index_spec: str
    state: CollectionState
    default_nprobe: int
    count: int
    indexed: int
    nlist: int
    memory_bytes: int
    vector_bytes: int
    index_bytes: int
    index_version: int
    n_features: int
    device: Device
    gpu: int
    device_bytes: int
    placement: str
    tombstones: int
    gpu_fallbacks: int
    deferred_deletes: bool
    build_recall: float
    build_recall_k: int
    build_recall_nprobe: int
    snapshot_version: int
    storage_note: str
    wal_bytes: int
    wal_records: int
    batched_requests: int
    batches: int
    batched_queries: int
    batch_expired: int
    shards: int
    replicas: int
    replica_info: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    version: int
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    default_ef_search: int
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeField]
    attribute_bytes: int
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index_spec: _Optional[str] = ..., state: _Optional[_Union[CollectionState, str]] = ..., default_nprobe: _Optional[int] = ..., count: _Optional[int] = ..., indexed: _Optional[int] = ..., nlist: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., vector_bytes: _Optional[int] = ..., index_bytes: _Optional[int] = ..., index_version: _Optional[int] = ..., n_features: _Optional[int] = ..., device: _Optional[_Union[Device, str]] = ..., gpu: _Optional[int] = ..., device_bytes: _Optional[int] = ..., placement: _Optional[str] = ..., tombstones: _Optional[int] = ..., gpu_fallbacks: _Optional[int] = ..., deferred_deletes: _Optional[bool] = ..., build_recall: _Optional[float] = ..., build_recall_k: _Optional[int] = ..., build_recall_nprobe: _Optional[int] = ..., snapshot_version: _Optional[int] = ..., storage_note: _Optional[str] = ..., wal_bytes: _Optional[int] = ..., wal_records: _Optional[int] = ..., batched_requests: _Optional[int] = ..., batches: _Optional[int] = ..., batched_queries: _Optional[int] = ..., batch_expired: _Optional[int] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., replica_info: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ..., version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ..., default_ef_search: _Optional[int] = ..., attributes: _Optional[_Iterable[_Union[AttributeField, _Mapping]]] = ..., attribute_bytes: _Optional[int] = ...) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version", "state", "count", "memory_bytes", "recall", "recall_k", "recall_nprobe")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_K_FIELD_NUMBER: _ClassVar[int]
    RECALL_NPROBE_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    count: int
    memory_bytes: int
    recall: float
    recall_k: int
    recall_nprobe: int
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., count: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., recall: _Optional[float] = ..., recall_k: _Optional[int] = ..., recall_nprobe: _Optional[int] = ...) -> None: ...

class ReplicaInfo(_message.Message):
    __slots__ = ("shard", "node", "addr", "state", "applied_seq", "log_seq", "count", "index_version", "version", "beside_version", "beside_state", "beside_recall")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LOG_SEQ_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BESIDE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BESIDE_STATE_FIELD_NUMBER: _ClassVar[int]
    BESIDE_RECALL_FIELD_NUMBER: _ClassVar[int]
    shard: int
    node: str
    addr: str
    state: str
    applied_seq: int
    log_seq: int
    count: int
    index_version: int
    version: int
    beside_version: int
    beside_state: str
    beside_recall: float
    def __init__(self, shard: _Optional[int] = ..., node: _Optional[str] = ..., addr: _Optional[str] = ..., state: _Optional[str] = ..., applied_seq: _Optional[int] = ..., log_seq: _Optional[int] = ..., count: _Optional[int] = ..., index_version: _Optional[int] = ..., version: _Optional[int] = ..., beside_version: _Optional[int] = ..., beside_state: _Optional[str] = ..., beside_recall: _Optional[float] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("id", "addr", "replicas")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    id: str
    addr: str
    replicas: int
    def __init__(self, id: _Optional[str] = ..., addr: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "nodes")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "ids", "vectors", "features", "attributes")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    vectors: _containers.RepeatedScalarFieldContainer[float]
    features: _containers.RepeatedScalarFieldContainer[float]
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeColumn]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., vectors: _Optional[_Iterable[float]] = ..., features: _Optional[_Iterable[float]] = ..., attributes: _Optional[_Iterable[_Union[AttributeColumn, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "count")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    count: int
    def __init__(self, upserted: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "count")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    count: int
    def __init__(self, deleted: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class BuildIndexRequest(_message.Message):
    __slots__ = ("collection", "recall_floor", "target_recall", "eval_queries", "eval_k")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUERIES_FIELD_NUMBER: _ClassVar[int]
    EVAL_K_FIELD_NUMBER: _ClassVar[int]
    collection: str
    recall_floor: float
    target_recall: float
    eval_queries: int
    eval_k: int
    def __init__(self, collection: _Optional[str] = ..., recall_floor: _Optional[float] = ..., target_recall: _Optional[float] = ..., eval_queries: _Optional[int] = ..., eval_k: _Optional[int] = ...) -> None: ...

class BuildIndexProgress(_message.Message):
    __slots__ = ("phase", "done", "total", "elapsed_seconds", "finished", "info", "recall", "recall_k", "recall_nprobe", "tuned_nprobe", "caught_up")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_K_FIELD_NUMBER: _ClassVar[int]
    RECALL_NPROBE_FIELD_NUMBER: _ClassVar[int]
    TUNED_NPROBE_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    phase: str
    done: int
    total: int
    elapsed_seconds: float
    finished: bool
    info: CollectionInfo
    recall: float
    recall_k: int
    recall_nprobe: int
    tuned_nprobe: int
    caught_up: int
    def __init__(self, phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., elapsed_seconds: _Optional[float] = ..., finished: _Optional[bool] = ..., info: _Optional[_Union[CollectionInfo, _Mapping]] = ..., recall: _Optional[float] = ..., recall_k: _Optional[int] = ..., recall_nprobe: _Optional[int] = ..., tuned_nprobe: _Optional[int] = ..., caught_up: _Optional[int] = ...) -> None: ...

class ImportIndexRequest(_message.Message):
    __slots__ = ("collection", "server_path", "create", "recall_floor", "target_recall", "eval_queries", "eval_k", "file", "offset", "data", "crc32", "stage", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SERVER_PATH_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    RECALL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUERIES_FIELD_NUMBER: _ClassVar[int]
    EVAL_K_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    server_path: str
    create: bool
    recall_floor: float
    target_recall: float
    eval_queries: int
    eval_k: int
    file: str
    offset: int
    data: bytes
    crc32: int
    stage: bool
    version: int
    def __init__(self, collection: _Optional[str] = ..., server_path: _Optional[str] = ..., create: _Optional[bool] = ..., recall_floor: _Optional[float] = ..., target_recall: _Optional[float] = ..., eval_queries: _Optional[int] = ..., eval_k: _Optional[int] = ..., file: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., crc32: _Optional[int] = ..., stage: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class ImportIndexResponse(_message.Message):
    __slots__ = ("info", "bytes_received", "files", "recall", "recall_k", "recall_nprobe", "elapsed_seconds", "version")
    INFO_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_K_FIELD_NUMBER: _ClassVar[int]
    RECALL_NPROBE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    bytes_received: int
    files: int
    recall: float
    recall_k: int
    recall_nprobe: int
    elapsed_seconds: float
    version: int
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ..., bytes_received: _Optional[int] = ..., files: _Optional[int] = ..., recall: _Optional[float] = ..., recall_k: _Optional[int] = ..., recall_nprobe: _Optional[int] = ..., elapsed_seconds: _Optional[float] = ..., version: _Optional[int] = ...) -> None: ...

class RolloutRequest(_message.Message):
    __slots__ = ("collection", "action", "version", "recall_floor", "min_ready", "hold_s")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    MIN_READY_FIELD_NUMBER: _ClassVar[int]
    HOLD_S_FIELD_NUMBER: _ClassVar[int]
    collection: str
    action: RolloutAction
    version: int
    recall_floor: float
    min_ready: int
    hold_s: float
    def __init__(self, collection: _Optional[str] = ..., action: _Optional[_Union[RolloutAction, str]] = ..., version: _Optional[int] = ..., recall_floor: _Optional[float] = ..., min_ready: _Optional[int] = ..., hold_s: _Optional[float] = ...) -> None: ...

class RolloutStatus(_message.Message):
    __slots__ = ("collection", "version", "versions", "message", "state", "rollout_version", "previous_version", "shards", "replicas", "stage_seq", "routers", "routers_on_version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STAGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_ON_VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    message: str
    state: str
    rollout_version: int
    previous_version: int
    shards: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    stage_seq: _containers.RepeatedScalarFieldContainer[int]
    routers: int
    routers_on_version: int
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ..., message: _Optional[str] = ..., state: _Optional[str] = ..., rollout_version: _Optional[int] = ..., previous_version: _Optional[int] = ..., shards: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ..., stage_seq: _Optional[_Iterable[int]] = ..., routers: _Optional[int] = ..., routers_on_version: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "fields")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("ids", "missing_ids", "dim", "vectors", "num_features", "features", "attributes")
    IDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    dim: int
    vectors: _containers.RepeatedScalarFieldContainer[float]
    num_features: int
    features: _containers.RepeatedScalarFieldContainer[float]
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeColumn]
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., missing_ids: _Optional[_Iterable[int]] = ..., dim: _Optional[int] = ..., vectors: _Optional[_Iterable[float]] = ..., num_features: _Optional[int] = ..., features: _Optional[_Iterable[float]] = ..., attributes: _Optional[_Iterable[_Union[AttributeColumn, _Mapping]]] = ...) -> None: ...
