"""The CUDA backend's scalar vocabulary `m`: every primitive emits numba.cuda Python source.

`CudaScalar(em)` appends one typed statement per primitive to an `Emitter` and returns an `E`
(a variable name and its dtype), so an op's `expr(m, ...)` becomes straight-line source with no
repeated subexpressions. Every value is wrapped in its numpy type (`f4(...)`, `i8(...)`, ...):
numba would otherwise widen float32 arithmetic with Python literals to float64, and Numba's CUDA
simulator (which runs this source as Python on numpy scalars) then computes in the same types.
Semantics follow numpy as the LLVM backend's do: NaN-propagating maximum/minimum, unordered `ne`,
Python-style floordiv/remainder that never trap (x // 0 is inf/nan for floats, 0 for ints), NaN or
out-of-range float -> int casts give the minimum integer. The math functions are names bound by
`loader.py`: numba's `math.*` (libdevice) on a GPU, numpy's ufuncs in the simulator (Python's
`math.log(0)` would raise where CUDA returns -inf).
"""
from __future__ import annotations

import math

CTOR = {"float32": "f4", "float64": "f8", "int32": "i4", "int64": "i8", "bool": "b1"}
FLOATS = ("float32", "float64")
_BITS = {"int32": 32, "int64": 64}


class E:
    """A value in generated source: a variable name (or literal) and its dtype name."""
    __slots__ = ("dtype", "src")

    def __init__(self, src: str, dtype: str) -> None:
        self.src, self.dtype = src, dtype

    def __str__(self) -> str:
        return self.src

    def __repr__(self) -> str:
        return f"E({self.src}: {self.dtype})"


class Emitter:
    """Lines of a function body under construction, with indentation and fresh names."""

    def __init__(self, indent: int = 1) -> None:
        self.lines: list = []
        self.indent = indent
        self._n = 0

    def tmp(self, prefix: str = "t") -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)

    def block(self, header: str) -> _Block:
        self.line(header)
        return _Block(self)

    def text(self) -> str:
        return "\n".join(self.lines)


class _Block:
    def __init__(self, em: Emitter) -> None:
        self.em = em

    def __enter__(self):
        self.em.indent += 1
        return self

    def __exit__(self, *exc):
        self.em.indent -= 1
        return False


def literal(v, dtype: str) -> str:
    """Source for the constant v as a value of dtype."""
    if dtype == "bool":
        return f"b1({bool(v)})"
    if dtype in FLOATS:
        f = float(v)
        if math.isnan(f):
            return f"{CTOR[dtype]}(nan)"
        if math.isinf(f):
            return f"{CTOR[dtype]}({'-' if f < 0 else ''}inf)"
        return f"{CTOR[dtype]}({f!r})"
    bits = _BITS[dtype]
    i = int(v) & ((1 << bits) - 1)
    if i >> (bits - 1):
        i -= 1 << bits
    return f"{CTOR[dtype]}({i})"


class CudaScalar:
    """The vocabulary `m` for numba.cuda source (see the module docstring)."""

    def __init__(self, em: Emitter) -> None:
        self.em = em

    # --- plumbing ---
    def _t(self, expr: str, dtype: str) -> E:
        name = self.em.tmp()
        self.em.line(f"{name} = {CTOR[dtype]}({expr})")
        return E(name, dtype)

    def _args(self, *xs) -> list:
        like = next((x for x in xs if isinstance(x, E)), None)
        if like is None:
            raise TypeError("at least one operand must be a generated value")
        return [x if isinstance(x, E) else E(literal(x, like.dtype), like.dtype) for x in xs]

    def _float(self, name: str, a: E) -> None:
        if a.dtype not in FLOATS:
            raise TypeError(f"{name} is only defined for floats; cast first")

    def _bool(self, x) -> E:
        if isinstance(x, E) and x.dtype == "bool":
            return x
        if not isinstance(x, E):
            return E(literal(x, "bool"), "bool")
        return self.cast(x, "bool")

    def const(self, v, like) -> E:
        dtype = like.dtype if isinstance(like, E) else str(like)
        return E(literal(v, dtype), dtype)

    # --- arithmetic ---
    def add(self, a, b) -> E:
        a, b = self._args(a, b)
        return self._t(f"{a} | {b}" if a.dtype == "bool" else f"{a} + {b}", a.dtype)

    def sub(self, a, b) -> E:
        a, b = self._args(a, b)
        if a.dtype == "bool":
            raise TypeError("sub is not defined for bool (as in numpy)")
        return self._t(f"{a} - {b}", a.dtype)

    def mul(self, a, b) -> E:
        a, b = self._args(a, b)
        return self._t(f"{a} & {b}" if a.dtype == "bool" else f"{a} * {b}", a.dtype)

    def div(self, a, b) -> E:
        a, b = self._args(a, b)
        self._float("div", a)
        return self._t(f"{a} / {b}", a.dtype)

    def neg(self, a) -> E:
        if a.dtype == "bool":
            raise TypeError("neg is not defined for bool (as in numpy)")
        return self._t(f"-{a}", a.dtype)

    def abs(self, a) -> E:
        return a if a.dtype == "bool" else self._t(f"abs({a})", a.dtype)

    def maximum(self, a, b) -> E:
        a, b = self._args(a, b)
        nan = f" or {a} != {a}" if a.dtype in FLOATS else ""
        return self._t(f"{a} if ({a} >= {b}{nan}) else {b}", a.dtype)

    def minimum(self, a, b) -> E:
        a, b = self._args(a, b)
        nan = f" or {a} != {a}" if a.dtype in FLOATS else ""
        return self._t(f"{a} if ({a} <= {b}{nan}) else {b}", a.dtype)

    def floordiv(self, a, b) -> E:
        a, b = self._args(a, b)
        if a.dtype == "bool":
            raise TypeError("floordiv is not defined for bool")
        zero = f"{a} / {b}" if a.dtype in FLOATS else f"{a} - {a}"
        return self._t(f"({a} // {b}) if {b} != 0 else ({zero})", a.dtype)

    def remainder(self, a, b) -> E:
        a, b = self._args(a, b)
        if a.dtype == "bool":
            raise TypeError("remainder is not defined for bool")
        zero = literal(float("nan"), a.dtype) if a.dtype in FLOATS else f"{a} - {a}"
        return self._t(f"({a} % {b}) if {b} != 0 else ({zero})", a.dtype)

    # --- rounding and math functions (names bound by loader.py) ---
    def _round(self, fn: str, a: E) -> E:
        if a.dtype not in FLOATS:
            return a                       # integers are integral
        return self._t(f"m_{fn}({a})", a.dtype)

    def floor(self, a) -> E:
        return self._round("floor", a)

    def ceil(self, a) -> E:
        return self._round("ceil", a)

    def trunc(self, a) -> E:
        return self._round("trunc", a)

    def rint(self, a) -> E:
        return self._round("rint4" if a.dtype == "float32" else "rint8", a)

    def _math(self, fn: str, a: E) -> E:
        self._float(fn, a)
        return self._t(f"m_{fn}({a})", a.dtype)

    def sqrt(self, a) -> E:
        return self._math("sqrt", a)

    def exp(self, a) -> E:
        return self._math("exp", a)

    def log(self, a) -> E:
        return self._math("log", a)

    def log1p(self, a) -> E:
        return self._math("log1p", a)

    def expm1(self, a) -> E:
        return self._math("expm1", a)

    def tanh(self, a) -> E:
        return self._math("tanh", a)

    def sin(self, a) -> E:
        return self._math("sin", a)

    def cos(self, a) -> E:
        return self._math("cos", a)

    def erf(self, a) -> E:
        return self._math("erf", a)

    def pow(self, a, b) -> E:
        a, b = self._args(a, b)
        if a.dtype in FLOATS:
            return self._t(f"m_pow({a}, {b})", a.dtype)
        if a.dtype == "bool":
            return self._t(f"{a} | (not {b})", "bool")
        return self._ipow(a, b)

    def _ipow(self, a: E, n: E) -> E:
        """Square-and-multiply; a negative exponent gives 1/a**-n truncated (0 unless |a| = 1),
        where numpy raises."""
        em, c = self.em, CTOR[a.dtype]
        r, base, k = em.tmp(), em.tmp(), em.tmp()
        em.line(f"{r} = {c}(1)")
        em.line(f"{base} = {a}")
        em.line(f"{k} = {n}")
        with em.block(f"if {k} < 0:"):
            em.line(f"{r} = {a} if ({a} == 1 or ({a} == -1 and {k} % 2 != 0)) else "
                    f"({c}(1) if {a} == -1 else {c}(0))")
        with em.block("else:"), em.block(f"while {k} > 0:"):
            with em.block(f"if {k} & 1:"):
                em.line(f"{r} = {c}({r} * {base})")
            em.line(f"{base} = {c}({base} * {base})")
            em.line(f"{k} = {k} >> 1")
        return E(r, a.dtype)

    # --- comparisons and logic ---
    def _cmp(self, sym: str, a, b) -> E:
        a, b = self._args(a, b)
        return self._t(f"{a} {sym} {b}", "bool")

    def lt(self, a, b) -> E:
        return self._cmp("<", a, b)

    def le(self, a, b) -> E:
        return self._cmp("<=", a, b)

    def gt(self, a, b) -> E:
        return self._cmp(">", a, b)

    def ge(self, a, b) -> E:
        return self._cmp(">=", a, b)

    def eq(self, a, b) -> E:
        return self._cmp("==", a, b)

    def ne(self, a, b) -> E:
        return self._cmp("!=", a, b)

    def select(self, c, a, b) -> E:
        a, b = self._args(a, b)
        return self._t(f"{a} if {self._bool(c)} else {b}", a.dtype)

    def logical_and(self, a, b) -> E:
        return self._t(f"{self._bool(a)} & {self._bool(b)}", "bool")

    def logical_or(self, a, b) -> E:
        return self._t(f"{self._bool(a)} | {self._bool(b)}", "bool")

    def logical_xor(self, a, b) -> E:
        return self._t(f"{self._bool(a)} ^ {self._bool(b)}", "bool")

    def logical_not(self, a) -> E:
        return self._t(f"not {self._bool(a)}", "bool")

    # --- casts ---
    def cast(self, x, dtype: str) -> E:
        if not isinstance(x, E):
            return E(literal(x, dtype), dtype)
        if x.dtype == dtype:
            return x
        if dtype == "bool":
            return self._t(f"{x} != 0", "bool")
        if x.dtype in FLOATS and dtype in _BITS:
            # numba's float->int conversion of NaN/out-of-range values differs from numpy's
            # (x86 gives the minimum integer) and the simulator's raises: select first
            bits = _BITS[dtype]
            lo, hi = float(-2 ** (bits - 1)), float(2 ** (bits - 1))
            return self._t(f"{x} if ({x} >= {lo!r} and {x} < {hi!r}) else {lo!r}", dtype)
        return self._t(f"{x}", dtype)


PRIMITIVES = tuple(n for n in dir(CudaScalar) if not n.startswith("_"))
