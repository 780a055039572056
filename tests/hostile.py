"""Hostile and broken weight files, written with the real libraries: PyTorch zip files whose
tensors are arbitrary views (size, stride, offset, dtype) of storages of any length, written
by Python's own pickler with torch's real rebuild function (as torch.save does), and HDF5
files made by h5py. Used by tests/test_security_weights.py and its fuzz test."""
import io
import pickle
import zipfile
from collections import OrderedDict

import numpy
import torch

STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
            "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
            "CharStorage": "<i1", "ByteStorage": "<u1", "BoolStorage": "?"}


class Storage:
    """A storage reference: pickled as torch's persistent id ``("storage", type, key, "cpu",
    numel)``; ``data`` (bytes) is what the archive's record holds."""

    def __init__(self, key, kind, numel, data):
        self.key, self.kind, self.numel, self.data = key, kind, numel, data


class Tensor:
    """A tensor: ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})``."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                 OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
        return None


def write_pth(path, entries, compress=False, records=None):
    """A torch.save-style zip: ``entries`` name -> :class:`Tensor` (or any picklable value);
    every storage's bytes go to ``archive/data/KEY``; ``records`` overrides or adds records."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(OrderedDict(entries))
    storages = {}
    for t in entries.values():
        if isinstance(t, Tensor) and isinstance(t.storage, Storage):
            storages[t.storage.key] = t.storage.data
    files = {"archive/data.pkl": buf.getvalue(), "archive/byteorder": b"little",
             "archive/version": b"3\n", "archive/.format_version": b"1",
             "archive/.storage_alignment": b"64"}
    files.update({f"archive/data/{k}": v for k, v in storages.items()})
    files.update(records or {})
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def storage(key, kind, values):
    a = numpy.asarray(values, dtype=STORAGES[kind])
    return Storage(key, kind, a.size, a.tobytes())
