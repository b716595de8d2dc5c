"""Python client for quiverd, the Quiver vector retrieval server (gRPC API quiver.v1).

    import numpy as np, quiver_client

    with quiver_client.Client("127.0.0.1:7070") as c:
        c.create("docs", dim=128, metric="l2", spec="IVF64,Flat")
        c.upsert("docs", ids=np.arange(len(x)), vectors=x)
        c.build("docs")
        ids, scores = c.search("docs", q, k=10, nprobe=32)

Every failure raises QuiverError, whose ``code`` is the grpc.StatusCode.
"""

from .client import (Client, ClusterStatus, CollectionInfo, Items, NodeInfo, PushResult,
                     QuiverError, ReplicaInfo, RolloutStatus, SearchResult, VersionInfo)

__all__ = ["Client", "ClusterStatus", "CollectionInfo", "Items", "NodeInfo", "PushResult",
           "QuiverError", "ReplicaInfo", "RolloutStatus", "SearchResult", "VersionInfo"]
__version__ = "0.1.0"
