"""A pickle reader that resolves only an allow-list of globals, so nothing in the file is run.

NVIDIA's pickles rebuild their networks by calling into their own code: an ada-pytorch module
pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, which executes the
`training/networks.py` source carried in `meta['module_src']`; a TF-release network pickles as a
`dnnlib.tflib.network.Network` whose `__setstate__` executes `build_module_src`. Here those two
entry points are stand-ins that keep the state as plain data. Everything else allowed only builds
containers, arrays and tensors; any other global stops the read with its name.
"""

from __future__ import annotations

import collections
import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch

from e4e_bench.checkpoints import load_bytes
from e4e_bench.errors import E4EBenchError


@dataclass
class PersistentObject:
    """What `_reconstruct_persistent_obj(meta)` would rebuild: the class name and its `__dict__`."""

    class_name: str
    state: dict


class TFNetwork:
    """Stand-in for `dnnlib.tflib.network.Network`: pickle's BUILD hands it the network's state."""

    def __setstate__(self, state) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"a TensorFlow Network's state is a {type(state).__name__}, not a dict")
        self.state = state


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: the items are all that matter."""


def reconstruct_persistent_obj(meta) -> PersistentObject:
    """Keep `meta['state']`; `meta['module_src']` is never compiled or run."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("a persistent object's meta is not {'type': 'class', 'class_name', 'state', ...}")
    return PersistentObject(str(meta.get("class_name")), meta["state"])


def load_storage_bytes(data: bytes):
    """A tensor storage that plain pickle embeds as the bytes of a legacy torch.save."""
    return load_bytes(data, "a tensor storage embedded in the pickle")


_reconstruct_array = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own array rebuilder, wherever it lives
_numpy_scalar = np.float64(0).__reduce__()[0]

ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,  # protocols 2 and 3 pickle sets as calls
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): load_storage_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"{package}.multiarray", "_reconstruct"): _reconstruct_array for package in ("numpy.core", "numpy._core")},
    **{(f"{package}.multiarray", "scalar"): _numpy_scalar for package in ("numpy.core", "numpy._core")},
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str | os.PathLike):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise E4EBenchError(
                f"{self.path}: refused to unpickle the global {module}.{name}; an NVIDIA generator pickle needs only "
                "tensors, arrays and network state (nothing from the file was run)"
            ) from None


def load_pickle(path: str | os.PathLike):
    """The object a pickle file holds, with NVIDIA's network classes as plain-data stand-ins."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, path).load()
    except E4EBenchError:
        raise
    except FileNotFoundError:
        raise E4EBenchError(f"{path} does not exist; check the path") from None
    except Exception as err:  # a damaged pickle can fail with almost any error type
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise E4EBenchError(f"{path} is not a readable pickle ({reason})") from None
