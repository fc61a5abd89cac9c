"""The Python values a trace read by name, collected when tracing so that a call can check them.

A trace bakes in every Python value it read: a global float (`x * k`), a flag steering a branch
(`if use_relu:`), a closed-over tensor (held by reference), a module's `self.scale`. torch.compile
guards on these; so does tracejit, with a guard per read that a call checks by identity, and by
equality of the same type for plain values (int, float, bool, str, None, bytes, numpy scalars,
tuples of these). A changed value retraces (8 compiles of one function, then eager, as for any
recompile); the trace of an earlier value is kept and reused when the value comes back.

The reads are found statically, from the names a function's code mentions (`co_names`, nested
lambdas and comprehensions included), with their values before that code runs:

- the globals of the traced function that it names, and its closure cells;
- recursively, the same for the values these hold when they are user code: a helper function's
  globals, a bound method, `self.cfg.scale`, `utils.scale`, `Config.scale`, a callable object, a
  decorated or nested `tj.compile`d function (through `__wrapped__`);
- the instance attributes (instance `__dict__`) named by the code, of each object reached so,
  of each argument the key holds by identity (`self` of a compiled method, a function passed
  in), and of each nn.Module the trace calls (through `__call__`, `forward` and the methods they
  name). tracejit's own layers get these too (`Dropout.p`, `BatchNorm1d.momentum`), but their
  globals are not guarded; for classes of user code, also the class attributes read and the
  absence of an instance attribute hiding them (`m.forward = ...` retraces).

The static set over-approximates (a name in a branch not taken, an attribute name that the code
uses on another object): that costs a guard, never a wrong result. Tracking the exact reads was
not chosen: CPython 3.11 does send LOAD_GLOBAL through `__getitem__` when the globals are a dict
subclass, but STORE_GLOBAL then writes into that copy, helpers keep their own globals, and
attribute reads are not covered.

Not guarded (a change is not seen): values reached otherwise (functions kept in lists or dicts
or returned by calls, attributes of objects the code does not name), the contents of lists,
dicts, sets and numpy arrays (their identity is guarded), objects without a `__dict__`
(`__slots__`), builtins shadowed later, the attributes of library modules (`tj.relu`, `np.pi`:
rebinding `tj` itself is guarded) and the globals of library code (tracejit, the standard
library, site-packages). A function that changes a value it reads (a counter) retraces on every
call: each trace runs its Python code once, as eager would, and after 8 compiles it runs eagerly.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import types

import numpy as np

from ..tensor import Tensor

_ABSENT = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()
# Module bookkeeping: the key holds .training; parameters, buffers, children and hooks are
# guarded where a module is called (Tracer.module)
_MODULE_STATE = frozenset({"training", "_parameters", "_buffers", "_modules", "_forward_hooks",
                           "_forward_pre_hooks", "_non_persistent_buffers_set"})
_PLAIN = (int, float, bool, str, bytes, type(None), complex)


def _library_dirs() -> tuple:
    dirs = {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}   # tracejit
    for scheme in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(scheme)
        if p:
            dirs.add(os.path.abspath(p))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


_LIBRARY = _library_dirs()
_library_files: dict = {}


def is_library(filename: str) -> bool:
    """Whether code from this file is library code (tracejit, stdlib, site-packages), whose
    globals are not guarded. `<string>` (exec, python -c) is user code."""
    r = _library_files.get(filename)
    if r is None:
        r = _library_files[filename] = not filename.startswith("<") and \
            os.path.abspath(filename).startswith(_LIBRARY)
    return r


def _user_module(m) -> bool:
    """Whether a Python module is user code (`__main__` may have no file)."""
    if m is None:
        return False
    f = getattr(m, "__file__", None)
    return m.__name__ == "__main__" if f is None else not is_library(f)


_code_names: dict = {}


def code_names(code: types.CodeType) -> frozenset:
    """Names that code (and the code objects nested in it) reads as globals or attributes."""
    r = _code_names.get(code)
    if r is None:
        names = set(code.co_names)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                names |= code_names(c)
        r = _code_names[code] = frozenset(names)
    return r


def by_value(v) -> bool:
    """Whether a guard compares v by equality (plain values) rather than identity."""
    if isinstance(v, _PLAIN) or isinstance(v, np.generic):
        return True
    return type(v) is tuple and all(by_value(x) for x in v)


class Reads:
    """The guards of one trace: `dicts` maps (id(mapping), name) -> (mapping, name, value,
    compare by identity, description); `cells` maps id(cell) -> (cell, value, identity,
    description). `mapping` is a module's globals, an instance's or a class's __dict__."""

    def __init__(self) -> None:
        self.dicts: dict = {}
        self.cells: dict = {}
        self._seen: set = set()

    def add(self, d, name: str, value, what: str, owner=None) -> None:
        """Guard d.get(name) (owner: the object d is the __dict__ of, when d is a class's
        mappingproxy, which is a new object on each access)."""
        k = (id(d if owner is None else owner), name)
        if k not in self.dicts:
            self.dicts[k] = (d, name, value, not by_value(value), what)

    def function(self, fn, obj=None) -> None:
        """Guard what fn (a function or bound method, called on `obj`) reads by name."""
        if isinstance(fn, types.MethodType):
            fn, obj = fn.__func__, fn.__self__
        if not isinstance(fn, types.FunctionType):
            return
        k = (fn, id(obj))
        if k in self._seen:
            return
        self._seen.add(k)
        code = fn.__code__
        names = code_names(code)
        user = not is_library(code.co_filename)
        if obj is not None:
            self.attributes(obj, names)
        if not user:
            return
        g = fn.__globals__
        for name in names:
            v = g.get(name, _ABSENT)
            if v is not _ABSENT:
                self.add(g, name, v, f"global '{name}' of {fn.__qualname__}")
                self.follow(v, names)
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            if name == "__class__" or id(cell) in self.cells:
                continue
            try:
                v = cell.cell_contents
            except ValueError:           # not assigned yet
                continue
            self.cells[id(cell)] = (cell, v, not by_value(v),
                                    f"closure variable '{name}' of {fn.__qualname__}")
            self.follow(v, names)

    def arguments(self, fn, values) -> None:
        """The arguments a call's key holds by identity (`self` of a compiled method, a
        function): what fn's code reads from them."""
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        if code is not None:
            for v in values:
                if not isinstance(v, (Tensor, tuple, list, dict) + _PLAIN):
                    self.follow(v, code_names(code))

    def follow(self, v, names: frozenset) -> None:
        """The reads of user code that value v of a read leads to."""
        if isinstance(v, (types.FunctionType, types.MethodType)):
            self.function(v)
        elif isinstance(v, types.ModuleType):
            if _user_module(v):                              # `utils.scale`
                d = v.__dict__
                for name in names:
                    if name in d:
                        self.add(d, name, d[name], f"{v.__name__}.{name}")
                        self.follow(d[name], names)
        elif isinstance(v, type):
            if _user_module(sys.modules.get(v.__module__)):  # `Config.scale`
                for name in names:
                    if name in v.__dict__:
                        x = v.__dict__[name]
                        self.add(v.__dict__, name, x, f"{v.__name__}.{name}", v)
                        self.follow(x.__func__ if isinstance(x, (staticmethod, classmethod))
                                    else x, names)
        elif not isinstance(v, (Tensor,) + _PLAIN) and \
                isinstance(getattr(v, "__dict__", None), dict):
            wrapped = v.__dict__.get("__wrapped__")  # a decorated or nested tj.compile'd function
            if wrapped is not None:
                self.follow(wrapped, names)
            if _user_module(sys.modules.get(type(v).__module__)):   # a callable object
                self.function(getattr(type(v), "__call__", None), v)
            self.attributes(v, names)

    def attributes(self, obj, names: frozenset) -> None:
        """Guard obj's instance attributes among `names`, and follow the methods it names."""
        k = (id(obj), names)
        if k in self._seen:
            return
        self._seen.add(k)
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict):
            return
        cls = type(obj)
        for name in names:
            if name in _MODULE_STATE:
                continue
            if name in d:
                self.add(d, name, d[name], f"{cls.__name__}.{name}")
                self.follow(d[name], names)
                continue
            owner = next((c for c in cls.__mro__ if name in c.__dict__), None)
            if owner is None:
                continue
            v = owner.__dict__[name]
            if _user_module(sys.modules.get(owner.__module__)):
                # a class attribute of user code: its value, and that no instance attribute
                # hides it
                self.add(owner.__dict__, name, v, f"{owner.__name__}.{name} (class attribute)",
                         owner)
                self.add(d, name, _ABSENT, f"{cls.__name__}.{name} (no instance attribute)")
            if isinstance(v, (staticmethod, classmethod)):
                self.function(v.__func__)
            elif isinstance(v, property):
                self.function(v.fget, obj)
            elif isinstance(v, types.FunctionType):
                self.function(v, obj)
