"""The .fvecs / .ivecs reader the Python benchmarks share (each row: int32 dim, then dim values)."""
import numpy as np


def read_vecs(path: str, dtype) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()
