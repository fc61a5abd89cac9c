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


# --- what changed between two calls' keys (recompile messages) ---

def key_difference(keys: list, key: tuple, argnames: list) -> str:
    """What differs between `key` and the closest of `keys` (a compiled function's cached
    keys), in the user's words: the first difference, named by its argument."""
    best = None
    for k in reversed(keys):        # on ties, the most recent key is the closest
        d = [(i, a, b) for i, (a, b) in enumerate(zip(k, key)) if a != b]
        if len(k) != len(key):
            d.append((-1, len(k), len(key)))
        if best is None or len(d) < len(best):
            best = d
    if not best or best[0][0] < 0:
        return "a new argument structure"
    i, old, new = best[0]
    if i == 0:
        return f"grad mode changed: expected {old}, got {new}"
    name = _names(key, argnames)[i]
    if _is_container(old) and _is_container(new):
        what = "the positional arguments" if i == 1 else f"'{name}'"
        return f"{what} changed structure: expected {_shape(old)}, got {_shape(new)}"
    if isinstance(old, tuple) and isinstance(new, tuple) and {len(old), len(new)} == {3, 4}:
        dev = ("cpu", "cuda:0")
        return f"tensor '{name}' device mismatch: expected {dev[len(old) == 4]}, got " \
               f"{dev[len(new) == 4]}"
    if isinstance(old, tuple) and len(old) == 3 and isinstance(old[0], tuple) and \
            isinstance(new, tuple) and len(new) == 3:
        if old[0] != new[0]:
            if len(old[0]) != len(new[0]):
                return f"tensor '{name}' dimension mismatch: expected {len(old[0])}, got " \
                       f"{len(new[0])}"
            dim = next(j for j, (a, b) in enumerate(zip(old[0], new[0])) if a != b)
            return f"tensor '{name}' size mismatch at dim {dim}: expected {old[0][dim]}, " \
                   f"got {new[0][dim]}"
        if old[1] != new[1]:
            return f"tensor '{name}' dtype mismatch: expected {old[1]}, got {new[1]}"
        return f"tensor '{name}' requires_grad mismatch: expected {old[2]}, got {new[2]}"
    return f"argument '{name}' changed: expected {old!r}, got {new!r}"


def _names(key: tuple, argnames: list) -> list:
    """Per position of a call's key (see `CompiledFunction.key`: grad mode, the positional
    arguments' tree, the keyword arguments' tree, the modules' training flags), the argument it
    belongs to: its parameter name, or its keyword."""
    names = ["grad mode"] * len(key)

    def subtree(pos: int, name: str) -> int:        # the position after it
        if pos >= len(key):
            return pos
        names[pos] = name
        n = len(_items(key[pos])) if _is_container(key[pos]) else 0
        pos += 1
        for _ in range(n):
            pos = subtree(pos, name)
        return pos

    pos = 1
    if pos < len(key) and _is_container(key[pos]):
        names[pos] = "arguments"
        nargs, pos = key[pos][1], pos + 1
        for j in range(nargs):
            pos = subtree(pos, argnames[j] if j < len(argnames) else f"arg{j}")
    if pos < len(key) and _is_container(key[pos]):         # keywords
        kw, pos = key[pos][1], pos + 1
        for name in kw:
            pos = subtree(pos, name)
    for j in range(pos, len(key)):
        names[j] = "module training flags"
    return names


def _is_container(part) -> bool:
    """A key part that heads a tuple, list or dict (`_flatten`)."""
    return type(part) is tuple and len(part) == 2 and part[0] in (tuple, list, dict)


def _items(part) -> list:
    """The children of a container's key part: positions, or a dict's keys."""
    return list(part[1]) if part[0] is dict else list(range(part[1]))


def _shape(part) -> str:
    if part[0] is dict:
        return f"a dict with keys {list(part[1])}"
    return f"a {part[0].__name__} of {part[1]}"
