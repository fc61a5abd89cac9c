"""`ParameterList` and `ParameterDict`: parameters held by position or key, as PyTorch's.

Each entry is an attribute named by its position ("0", "1", ...) or key, so a Parameter is
registered under that name and state dict keys are torch's (`params.0`, `table.left`). Storing a
plain Tensor wraps it into a Parameter (requires_grad=True), as torch does; other values (None,
numbers, modules) are kept as they would be by attribute assignment.
"""
from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from ..tensor import Tensor, _tracer
from .module import Module
from .parameter import Parameter


def _read(c: Module) -> None:
    """c's entries are read: inside a compiled function's trace their number is guarded, so
    an entry added after the trace retraces (as for ModuleList, container.py)."""
    if _tracer["active"]:
        _tracer["module"](c)


def _as_parameter(value):
    return Parameter(value) if isinstance(value, Tensor) and \
        not isinstance(value, Parameter) else value


def _entry_repr(k, p) -> str:
    if isinstance(p, Tensor):
        kind = "Parameter" if isinstance(p, Parameter) else "Tensor"
        size = "x".join(str(s) for s in p.shape)
        dev = f" ({p.device})" if p.device.type == "cuda" else ""
        return f"  ({k}): {kind} containing: [{p.dtype!r} of size {size}{dev}]"
    return f"  ({k}): Object of type: {type(p).__name__}"


class ParameterList(Module):
    """A list whose Parameters are registered: `ParameterList([Parameter(tj.randn(3))])`."""

    def __init__(self, values: Iterable | None = None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def _abs_index(self, idx) -> str:
        idx = operator.index(idx)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} is out of range")
        return str(idx % len(self))

    def __getitem__(self, idx):
        if isinstance(idx, slice):      # a new list holding the same Parameters
            return self.__class__([self[i] for i in range(*idx.indices(len(self)))])
        return getattr(self, self._abs_index(idx))

    def __setitem__(self, idx: int, param) -> None:
        # every way in (constructor, append, extend) goes through here: the one place that
        # wraps tensors
        setattr(self, self._abs_index(idx), _as_parameter(param))

    def __len__(self) -> int:
        _read(self)
        return self._size

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def __iadd__(self, parameters: Iterable) -> ParameterList:  # noqa: PYI034
        return self.extend(parameters)

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]

    def append(self, value) -> ParameterList:
        self._size += 1
        try:
            self[self._size - 1] = value
        except BaseException:
            self._size -= 1     # (torch keeps the failed slot; a hole would break iteration)
            raise
        return self

    def extend(self, values: Iterable) -> ParameterList:
        # a Tensor is iterable, but never unpacked here
        if not isinstance(values, Iterable) or isinstance(values, Tensor):
            raise TypeError("ParameterList.extend should be called with an iterable, but got "
                            + type(values).__name__)
        for v in list(values):
            self.append(v)
        return self

    def extra_repr(self) -> str:
        return "\n".join(_entry_repr(k, p) for k, p in enumerate(self))

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """An ordered dict whose Parameters are registered under their (string) keys."""

    def __init__(self, parameters=None) -> None:
        super().__init__()
        self._keys: dict = {}
        if parameters is not None:
            self.update(parameters)

    @staticmethod
    def _check_key(key) -> str:
        if not isinstance(key, str):
            raise TypeError(f"Index given to ParameterDict cannot be used as a key as it is not "
                            f"a string (type is '{type(key).__name__}'). Open an issue on "
                            f"github if you need non-string keys.")
        return key

    def __getitem__(self, key: str):
        _read(self)
        return getattr(self, self._check_key(key))    # a missing key: AttributeError, as torch

    def __setitem__(self, key: str, value) -> None:
        setattr(self, self._check_key(key), _as_parameter(value))
        self._keys[key] = None          # (after: a refused name, "a.b", leaves no key behind)

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        delattr(self, key)

    def __len__(self) -> int:
        _read(self)
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        _read(self)
        return iter(self._keys)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._keys)

    def __contains__(self, key) -> bool:
        _read(self)
        return key in self._keys

    def copy(self) -> ParameterDict:
        """A new ParameterDict holding the same values, in the same order."""
        return ParameterDict(OrderedDict((k, self[k]) for k in self._keys))

    def setdefault(self, key: str, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        for k in list(self._keys):
            del self[k]

    def pop(self, key: str):
        v = self[key]
        del self[key]
        return v

    def popitem(self) -> tuple:
        if not self._keys:
            raise KeyError("popitem(): dictionary is empty")
        k = next(reversed(self._keys))
        return k, self.pop(k)

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def fromkeys(self, keys: Iterable[str], default=None) -> ParameterDict:
        return ParameterDict((k, default) for k in keys)

    def keys(self):
        _read(self)
        return self._keys.keys()

    def items(self):
        _read(self)
        return ((k, self[k]) for k in self._keys)

    def values(self):
        _read(self)
        return (self[k] for k in self._keys)

    def update(self, parameters) -> None:
        """Add or overwrite entries. An OrderedDict, a ParameterDict or a sequence of pairs
        keeps its order; any other mapping is added in sorted key order (torch's rule, which
        fixes the state dict order of `ParameterDict({...})`)."""
        if not isinstance(parameters, Iterable):
            raise TypeError("ParametersDict.update should be called with an iterable of "
                            "key/value pairs, but got " + type(parameters).__name__)
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = list(parameters.items())
        elif isinstance(parameters, Mapping):
            pairs = sorted(parameters.items())
        else:
            pairs = []
            for j, p in enumerate(parameters):
                if not isinstance(p, Iterable):
                    raise TypeError(f"ParameterDict update sequence element #{j} should be "
                                    f"Iterable; is{type(p).__name__}")
                if len(p) != 2:
                    raise ValueError(f"ParameterDict update sequence element #{j} has length "
                                     f"{len(p)}; 2 is required")
                pairs.append(p)
        for k, v in pairs:
            self[k] = v

    def __or__(self, other: ParameterDict) -> ParameterDict:
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other: ParameterDict) -> ParameterDict:
        out = other.copy()
        out.update(self)
        return out

    def __ior__(self, other: ParameterDict) -> ParameterDict:  # noqa: PYI034
        self.update(other)
        return self

    def extra_repr(self) -> str:
        return "\n".join(_entry_repr(k, p) for k, p in self.items())

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")
