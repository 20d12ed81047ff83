"""A tiny pure-Python safetensors reader (json + numpy.frombuffer); no safetensors package."""

import json
import struct

import numpy as np

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """-> (tensors: dict name -> numpy array (a copy), metadata: dict str -> str)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        dt = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
        a, b = e["data_offsets"]
        arr = np.frombuffer(data, dtype=dt, count=(b - a) // dt.itemsize, offset=base + a)
        out[name] = arr.reshape(e["shape"]).copy()
    return out, meta
