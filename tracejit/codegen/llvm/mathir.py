"""Typed IR value wrappers and error-free transformations for the math kernels.

This module owns the small DSL that ``mathlib`` (f64) and ``mathlib32`` (f32) are written in:
``D`` (a float SSA value: f64 or f32, scalar or vector) and ``I`` (the integer of the same
width: i64 or i32) with Python operators that emit plain IEEE instructions (never fast-math
flags), the ``Emitter`` that makes constants, selects, bit casts, gathers and calls to
single-instruction LLVM intrinsics for one value shape and float width, and the classic
exact building blocks: TwoSum, FastTwoSum, TwoProduct (via llvm.fma), rounding to an integer
with the 1.5*2^52 (f32: 1.5*2^23) trick and exact scaling by powers of two.
"""
from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

F64, I64, I32, F32 = ir.DoubleType(), ir.IntType(64), ir.IntType(32), ir.FloatType()
MAGIC = 6755399441055744.0        # 1.5 * 2**52: adding it rounds to an integer (even ties)
MAGIC_BITS = 0x4338000000000000
MAGIC32, MAGIC32_BITS = 12582912.0, 0x4B400000      # 1.5 * 2**23, the same for f32
INF, NAN = float("inf"), float("nan")


class D:
    """A float (f64 or f32, scalar or vector) SSA value with arithmetic operators."""
    __slots__ = ("e", "v")

    def __init__(self, e: Emitter, v: ir.Value):
        self.e, self.v = e, v

    def _o(self, o: D | float) -> ir.Value:
        return o.v if isinstance(o, D) else self.e.cf(o)

    def __add__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fadd(self.v, self._o(o)))

    def __radd__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fadd(self._o(o), self.v))

    def __sub__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fsub(self.v, self._o(o)))

    def __rsub__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fsub(self._o(o), self.v))

    def __mul__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fmul(self.v, self._o(o)))

    def __rmul__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fmul(self._o(o), self.v))

    def __truediv__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fdiv(self.v, self._o(o)))

    def __rtruediv__(self, o: D | float) -> D:
        return D(self.e, self.e.b.fdiv(self._o(o), self.v))

    def __neg__(self) -> D:
        return D(self.e, self.e.b.fneg(self.v))

    # Ordered comparisons (False when either side is NaN); they return raw i1 masks.
    def __lt__(self, o: D | float) -> ir.Value:
        return self.e.b.fcmp_ordered("<", self.v, self._o(o))

    def __le__(self, o: D | float) -> ir.Value:
        return self.e.b.fcmp_ordered("<=", self.v, self._o(o))

    def __gt__(self, o: D | float) -> ir.Value:
        return self.e.b.fcmp_ordered(">", self.v, self._o(o))

    def __ge__(self, o: D | float) -> ir.Value:
        return self.e.b.fcmp_ordered(">=", self.v, self._o(o))

    def eq(self, o: D | float) -> ir.Value:
        return self.e.b.fcmp_ordered("==", self.v, self._o(o))


class I:  # noqa: E742 -- the DSL names: D (float), I (integer)
    """An i64 or i32 (scalar or vector) SSA value; ``>>`` is arithmetic, ``lshr`` logical."""
    __slots__ = ("e", "v")

    def __init__(self, e: Emitter, v: ir.Value):
        self.e, self.v = e, v

    def _o(self, o: I | int) -> ir.Value:
        return o.v if isinstance(o, I) else self.e.ci(o)

    def __add__(self, o: I | int) -> I:
        return I(self.e, self.e.b.add(self.v, self._o(o)))

    def __sub__(self, o: I | int) -> I:
        return I(self.e, self.e.b.sub(self.v, self._o(o)))

    def __mul__(self, o: I | int) -> I:
        return I(self.e, self.e.b.mul(self.v, self._o(o)))

    def __and__(self, o: I | int) -> I:
        return I(self.e, self.e.b.and_(self.v, self._o(o)))

    def __or__(self, o: I | int) -> I:
        return I(self.e, self.e.b.or_(self.v, self._o(o)))

    def __lshift__(self, o: I | int) -> I:
        return I(self.e, self.e.b.shl(self.v, self._o(o)))

    def __rshift__(self, o: I | int) -> I:
        return I(self.e, self.e.b.ashr(self.v, self._o(o)))

    def lshr(self, o: I | int) -> I:
        return I(self.e, self.e.b.lshr(self.v, self._o(o)))

    def ne(self, o: I | int) -> ir.Value:
        return self.e.b.icmp_signed("!=", self.v, self._o(o))

    def eq(self, o: I | int) -> ir.Value:
        return self.e.b.icmp_signed("==", self.v, self._o(o))

    def __gt__(self, o: I | int) -> ir.Value:
        return self.e.b.icmp_signed(">", self.v, self._o(o))

    def __lt__(self, o: I | int) -> ir.Value:
        return self.e.b.icmp_signed("<", self.v, self._o(o))


class Emitter:
    """Builds f64/i64 (``single``: f32/i32) values of one shape (scalar, or ``lanes`` lanes)."""

    def __init__(self, builder: ir.IRBuilder, lanes: int | None, single: bool = False):
        self.b, self.lanes, self.single = builder, lanes, single
        self.fe, self.ie = (F32, I32) if single else (F64, I64)
        self.bits_w = self.ie.width
        self.ft = self.fe if lanes is None else ir.VectorType(self.fe, lanes)
        self.it = self.ie if lanes is None else ir.VectorType(self.ie, lanes)

    def _splat(self, ty: ir.Type, scalar_ty: ir.Type, v: float) -> ir.Constant:
        c = ir.Constant(scalar_ty, v)
        return c if self.lanes is None else ir.Constant(ty, [c] * self.lanes)

    def cf(self, v: float) -> ir.Constant:
        return self._splat(self.ft, self.fe, float(v))

    def ci(self, v: int) -> ir.Constant:
        w = self.bits_w
        v &= (1 << w) - 1
        return self._splat(self.it, self.ie, v - (1 << w) if v >> (w - 1) else v)

    def d(self, v: D | float) -> D:
        return v if isinstance(v, D) else D(self, self.cf(v))

    def intr(self, name: str, *args: D | float) -> D:
        """Call ``llvm.<name>`` on float args; only single-instruction intrinsics are used."""
        t = "f32" if self.single else "f64"
        suffix = t if self.lanes is None else f"v{self.lanes}{t}"
        fnty = ir.FunctionType(self.ft, [self.ft] * len(args))
        mod = self.b.module
        full = f"llvm.{name}.{suffix}"
        fn = mod.globals.get(full) or ir.Function(mod, fnty, full)
        return D(self, self.b.call(fn, [self.d(a).v for a in args]))

    def fma(self, a: D | float, b: D | float, c: D | float) -> D:
        """a*b + c rounded once (exact product: the basis of TwoProduct)."""
        return self.intr("fma", a, b, c)

    def fabs(self, a: D) -> D:
        return self.intr("fabs", a)

    def copysign(self, a: D | float, b: D) -> D:
        return self.intr("copysign", a, b)

    def trunc(self, a: D) -> D:
        return self.intr("trunc", a)

    def sel(self, m: ir.Value, a: D | I | float, b: D | I | float) -> D | I:
        if isinstance(a, I) or isinstance(b, I) or (type(a) is int and type(b) is int):
            a = a if isinstance(a, I) else I(self, self.ci(a))
            b = b if isinstance(b, I) else I(self, self.ci(b))
            return I(self, self.b.select(m, a.v, b.v))
        return D(self, self.b.select(m, self.d(a).v, self.d(b).v))

    def or_(self, *ms: ir.Value) -> ir.Value:
        r = ms[0]
        for m in ms[1:]:
            r = self.b.or_(r, m)
        return r

    def and_(self, *ms: ir.Value) -> ir.Value:
        r = ms[0]
        for m in ms[1:]:
            r = self.b.and_(r, m)
        return r

    def isnan(self, a: D) -> ir.Value:
        return self.b.fcmp_unordered("uno", a.v, a.v)

    def bits(self, a: D) -> I:
        return I(self, self.b.bitcast(a.v, self.it))

    def from_bits(self, a: I) -> D:
        return D(self, self.b.bitcast(a.v, self.ft))

    def i2d(self, a: I) -> D:               # exact for |a| < 2**53 (f32: 2**24)
        return D(self, self.b.sitofp(a.v, self.ft))

    def clamp(self, x: D, lo: float, hi: float) -> D:
        """Clamp into [lo, hi]; NaN passes through (ordered compares are False)."""
        return self.sel(x < lo, lo, self.sel(x > hi, hi, x))

    def poly(self, x: D, coeffs: Sequence[float]) -> D:
        """Horner evaluation; fmuladd lets the backend fuse when FMA is fast."""
        acc = self.d(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.intr("fmuladd", acc, x, c)
        return acc

    def table_load(self, table: Sequence[int], name: str, idx: I) -> I:
        """Load ``table[idx]`` of a private i32 constant array (a gather), zero-extended
        to this emitter's integer width."""
        mod = self.b.module
        gv = mod.globals.get(name)
        if gv is None:
            aty = ir.ArrayType(I32, len(table))
            gv = ir.GlobalVariable(mod, aty, name)
            gv.global_constant = True
            gv.linkage = "private"
            gv.initializer = ir.Constant(aty, [w - (1 << 32) if w >> 31 else w for w in table])
        zero = ir.Constant(I32, 0)

        def one(i: ir.Value) -> ir.Value:
            v = self.b.load(self.b.gep(gv, [zero, i], inbounds=True))
            return v if self.single else self.b.zext(v, I64)
        if self.lanes is None:
            return I(self, one(idx.v))
        out = ir.Constant(self.it, ir.Undefined)
        for lane in range(self.lanes):
            li = ir.Constant(I32, lane)
            out = self.b.insert_element(out, one(self.b.extract_element(idx.v, li)), li)
        return I(self, out)


# ---------------------------------------------------------------- error-free transforms
def two_sum(a: D, b: D) -> tuple[D, D]:
    """Knuth's TwoSum: s + err == a + b exactly, any magnitudes."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a: D | float, b: D | float) -> tuple[D, D]:
    """Dekker's FastTwoSum, valid when |a| >= |b| (or a == 0)."""
    s = a + b
    return s, b - (s - a)


def two_prod(e: Emitter, a: D, b: D) -> tuple[D, D]:
    p = a * b
    return p, e.fma(a, b, -p)


def round_int(e: Emitter, y: D) -> tuple[D, I]:
    """Round |y| < 2**51 (f32: 2**22) to the nearest integer, as a float and as an int.

    The 1.5*2**52 trick avoids fptosi (poison for NaN) and 64-bit conversions that many
    vector ISAs lack; for NaN the integer is garbage but defined.
    """
    magic, magic_bits = (MAGIC32, MAGIC32_BITS) if e.single else (MAGIC, MAGIC_BITS)
    t = y + magic
    return t - magic, e.bits(t) - magic_bits


def pow2(e: Emitter, k: I) -> D:
    """2.0**k for integer -1022 <= k <= 1023 (f32: -126 .. 127), from the exponent field."""
    if e.single:
        return e.from_bits((k + 127) << 23)
    return e.from_bits((k + 1023) << 52)


def scale2(e: Emitter, v: D, k: I) -> D:
    """v * 2**k for |k| <= 2044 (f32: 252) in two exact steps: subnormals round only once."""
    k1 = k >> 1
    return v * pow2(e, k1) * pow2(e, k - k1)
