"""Flattening of a compiled function's arguments and results.

Arguments are walked into tensor/float leaves (the dynamic inputs) and a hashable key (the
structure, each tensor's shape/dtype/requires_grad, static values); results into tensor leaves and
a spec that rebuilds the same nested structure around the compiled outputs.
"""
from __future__ import annotations

import numpy as np

from ..ops import dtypes as D
from ..tensor import Tensor, _ndarray


def _flatten(obj, leaves: list, key: list) -> None:
    t = type(obj)
    if t is Tensor or isinstance(obj, Tensor):
        d = obj._data
        leaves.append(obj)
        key.append((d.shape, d.dtype, obj.requires_grad) if type(d) is _ndarray else
                   (d.shape, d.dtype, obj.requires_grad, "cuda:0"))   # a CUDA tensor
    elif t is float:
        leaves.append(obj)
        key.append(float)
    elif t is tuple or t is list:
        key.append((t, len(obj)))
        for x in obj:
            _flatten(x, leaves, key)
    elif t is dict:
        key.append((dict, tuple(obj)))
        for x in obj.values():
            _flatten(x, leaves, key)
    elif obj is None or t in (int, bool, str):
        key.append((t, obj))
    elif isinstance(obj, np.generic) and not isinstance(obj, np.floating):
        key.append((t, obj.item()))  # a numpy int or bool: static, by value, as an int
    elif isinstance(obj, np.floating):
        leaves.append(float(obj))    # a numpy float: a traced 0-d input, as a float
        key.append(float)
    elif t is _ndarray and _tensor_dtype(obj.dtype):
        # an array is an input like a tensor (its values change between calls; keyed by
        # identity, a trace would keep the first call's values)
        leaves.append(Tensor._make(obj))
        key.append((obj.shape, obj.dtype, False, "numpy"))
    else:
        key.append(("id", id(obj)))  # modules and other objects: static, by identity


def _tensor_dtype(dtype) -> bool:
    try:
        D.from_numpy_dtype(dtype)
        return True
    except TypeError:
        return False


def _rebuild(obj, it):
    t = type(obj)
    if isinstance(obj, Tensor) or t is float or isinstance(obj, np.floating) or \
            (t is _ndarray and _tensor_dtype(obj.dtype)):
        return next(it)
    if t is tuple or t is list:
        return t(_rebuild(x, it) for x in obj)
    if t is dict:
        return {k: _rebuild(v, it) for k, v in obj.items()}
    return obj


def _spec(out, leaves: list):
    """Structure of the function's result, with tensor leaves replaced by positions."""
    if isinstance(out, Tensor):
        leaves.append(out)
        return ("t", len(leaves) - 1)
    if type(out) in (tuple, list):
        return (type(out), [_spec(x, leaves) for x in out])
    if type(out) is dict:
        return (dict, {k: _spec(v, leaves) for k, v in out.items()})
    if hasattr(out, "_fields") and isinstance(out, tuple):  # namedtuple
        return ("nt", type(out), [_spec(x, leaves) for x in out])
    return ("v", out)


def _unspec(spec, it):
    tag = spec[0]
    if tag == "t":
        return next(it)
    if tag == "v":
        return spec[1]
    if tag == "nt":
        return spec[1](*[_unspec(s, it) for s in spec[2]])
    if tag is dict:
        return {k: _unspec(v, it) for k, v in spec[1].items()}
    return tag(_unspec(s, it) for s in spec[1])
