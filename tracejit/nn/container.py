"""Container modules: `Sequential`, `ModuleList`, `ModuleDict`, as in PyTorch.

Children are registered under their position ("0", "1", ...) or key, which is what makes state
dict keys such as `layers.0.weight` match PyTorch's.
"""
from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import chain

from ..tensor import _tracer
from .module import Module


def _entries(c: Module):
    """c's children, read by iteration, len or indexing: inside a compiled function's trace
    their number is guarded, so a module appended after the trace retraces (it would be
    missing from the replayed trace)."""
    if _tracer["active"]:
        _tracer["module"](c)
    return c._modules


def _index(i, n: int) -> int:
    """i (an int, or anything with __index__) as a position in 0..n-1; torch's IndexError."""
    i = operator.index(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range")
    return i % n


def _factor(seq: Module, other) -> int:
    if not isinstance(other, int):
        raise TypeError(f"unsupported operand type(s) for *: {type(seq)} and {type(other)}")
    if other <= 0:
        raise ValueError(f"Non-positive multiplication factor {other} for {type(seq)}")
    return other


class Sequential(Module):
    """Modules applied in order: `Sequential(Linear(2, 8), ReLU(), Linear(8, 1))`."""

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(OrderedDict(list(_entries(self).items())[idx]))
        return list(_entries(self).values())[_index(idx, len(self))]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(idx, len(self))]
        setattr(self, key, module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(keys))]]):
            del self._modules[k]
        _renumber(self, list(self._modules.values()))

    def __len__(self) -> int:
        return len(_entries(self))

    def __iter__(self) -> Iterator[Module]:
        return iter(_entries(self).values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, sequential: Iterable[Module]) -> Sequential:
        for m in list(sequential):      # (a snapshot: `seq.extend(seq)` doubles it once)
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert before `index` (-len..len, as torch; a list's insert would clamp)."""
        if not isinstance(module, Module):
            raise AssertionError(f"module should be of type: {Module}")
        n = len(self._modules)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        items = list(self._modules.values())
        items.insert(index, module)
        _renumber(self, items)
        return self

    def pop(self, key: int | slice) -> Module:
        v = self[key]
        del self[key]
        return v

    def __add__(self, other: Sequential) -> Sequential:
        """A new Sequential holding the modules of both (the same module objects)."""
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but "
                             f"{type(other)} is given.")
        return Sequential(*self, *other)

    def __iadd__(self, other: Sequential) -> Sequential:  # noqa: PYI034
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but "
                             f"{type(other)} is given.")
        return self.extend(other)

    def __mul__(self, other: int) -> Sequential:
        """The modules repeated `other` times: the same objects, so their parameters are
        shared, as in torch."""
        return Sequential(*(list(self) * _factor(self, other)))

    def __rmul__(self, other: int) -> Sequential:
        return self.__mul__(other)

    def __imul__(self, other: int) -> Sequential:  # noqa: PYI034
        return self.extend(list(self) * (_factor(self, other) - 1))


class ModuleList(Module):
    """A list of modules whose parameters are registered: `ModuleList([Linear(4, 4)] * 3)`."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(list(_entries(self).values())[idx])
        return _entries(self)[str(_index(idx, len(self)))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(_index(idx, len(self))), module)

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        del items[idx if isinstance(idx, slice) else _index(idx, len(items))]
        _renumber(self, items)

    def __len__(self) -> int:
        return len(_entries(self))

    def __iter__(self) -> Iterator[Module]:
        return iter(_entries(self).values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:  # noqa: PYI034
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        """A new ModuleList of both's modules (the same objects); `other` is any iterable."""
        return ModuleList(chain(self, other))

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError("ModuleList.extend should be called with an iterable, but got "
                            + type(modules).__name__)
        for m in list(modules):         # (a snapshot: `ml.extend(ml)` doubles it once)
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert before `index`, as list.insert (negative counts from the end)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        items = list(self._modules.values())
        items.insert(index, module)
        _renumber(self, items)

    def pop(self, key: int | slice) -> Module:
        v = self[key]
        del self[key]
        return v

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call each "
                                  "module")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered, in insertion order."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return _entries(self)[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(_entries(self))

    def __iter__(self) -> Iterator[str]:
        return iter(_entries(self))

    def __contains__(self, key: str) -> bool:
        return key in _entries(self)

    def keys(self):
        return _entries(self).keys()

    def values(self):
        return _entries(self).values()

    def items(self):
        return _entries(self).items()

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self[k] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it and call the module")


def _renumber(container: Module, items: list) -> None:
    """Hold `items` under keys 0..n-1, as PyTorch's containers do after a deletion."""
    container._modules.clear()
    for i, m in enumerate(items):
        container._modules[str(i)] = m
