"""The LLVM backend's scalar vocabulary ``m``: every op's scalar expression, emitted as IR.

This module owns ``LLVMScalar``, the object that op definitions call (``m.add``,
``m.exp``, ``m.select``, ...) when the LLVM backend generates a kernel, and ``PRIMITIVES``,
the list of vocabulary names.  Values are llvmlite ``ir.Value``s of type float, double,
i32, i64 or i1, or vectors of those; Python numbers are converted to the other operand's
type.  Semantics follow numpy: IEEE ordered comparisons except ``ne`` (unordered), NaN
propagating maximum/minimum, Python-style floordiv/remainder that never trap, no
fast-math flags.  The transcendental functions are straight-line code that the loop
vectoriser turns into SIMD code; no libm calls.  f64 inputs use ``mathlib`` (f64 and
double-double arithmetic).  f32 inputs use ``mathlib32``, computed in f32 lanes (16 per
AVX-512 instruction, no conversion to f64) -- except ``pow``, which extends to f64, calls
``mathlib.pow`` and rounds once (an f32-lane pow would need log(x) to ~2^-31, beyond
float-float cost, since |y log x| up to ~104 multiplies its error).
``LLVMScalar(native_f32=False)`` sends f32 through the f64 kernels as well (perf/llvm_math.py
times both: the f32 kernels are 3-6x faster).

Accuracy of exp, expm1, log, log1p, tanh, erf, sin, cos and pow, in ulp of the result
type, against numpy float64 on the float64 input rounded to the result type (dense
sweeps, 2^20 random bit patterns and the special values; tests/test_llvm_scalar.py):
bound asserted ``ULP_BOUNDS`` = 1 ulp for f32 and 2 ulp for f64.  f32 (mathlib32):
measured over all 2^32 float32 inputs (``TRACEJIT_EXHAUSTIVE=1`` runs that test), the max
error is 1 ulp for every function, each kernel keeping its error near 0.5 ulp plus a small
fraction (see mathlib32's docstring for the schemes; exp, for one, can still misround a
near-tie such as exp(2^-24)).  f32 pow (f64 path) and the f32 functions under
``native_f32=False`` round once an f64 value within ~2^-38 relative: <= 0.5 ulp + 2^-14 ulp.
f64: measured max 1 ulp for every function; against exact mpmath values (sampled) <= 0.51
ulp for exp, log, log1p and pow, 0.56 for expm1, ~0.7 for tanh, sin and cos and 0.8 for erf.
Special values (signed zeros, subnormal inputs and results, overflow, inf, NaN) match numpy
exactly.  sin/cos use an exact Payne-Hanek reduction (f64: for every finite double;
f32: a float32-specific one, for every finite float), so the bounds hold for every |x|.
Float floordiv/remainder use LLVM ``frem`` (an exact libm fmod call, not vectorised),
exactly like numpy's npy_divmod.  Float-to-integer casts of NaN or out-of-range values
give the minimum integer of the target type (what x86 ``cvttsd2si`` and hence numpy
produce there).  Integer ``pow`` with a negative exponent gives 1/x**-n truncated to an
integer (0 unless x is 1 or -1); numpy raises instead.
"""
from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from . import mathir, mathlib, mathlib32

PRIMITIVES = (
    "add", "sub", "mul", "div", "neg", "abs", "maximum", "minimum",
    "floordiv", "remainder",
    "floor", "ceil", "trunc", "rint", "sqrt",
    "exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "erf", "pow",
    "lt", "le", "gt", "ge", "eq", "ne",
    "select", "logical_and", "logical_or", "logical_xor", "logical_not",
    "cast", "const",
)

# Asserted accuracy vs numpy float64 rounded to the result type, in ulp: (f32, f64). The f32
# figure holds for the mathlib32 kernels over every float32 input (checked exhaustively) and
# for the f64 path (pow, native_f32=False).
ULP_BOUNDS = {op: (1, 2) for op in
              ("exp", "expm1", "log", "log1p", "tanh", "erf", "sin", "cos", "pow")}

# Functions that float32 computes in float32 lanes (mathlib32); pow goes through f64.
F32_NATIVE = ("exp", "expm1", "log", "log1p", "tanh", "erf", "sin", "cos")

DTYPES = {
    "float32": ir.FloatType(), "float64": ir.DoubleType(),
    "int32": ir.IntType(32), "int64": ir.IntType(64), "bool": ir.IntType(1),
}
Operand = ir.Value | float | int | bool     # Python numbers take the other operand's type
_FCMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="}


def _split(ty: ir.Type) -> tuple[ir.Type, int | None]:
    """(element type, lane count or None) of a scalar or vector type."""
    if isinstance(ty, ir.VectorType):
        return ty.element, ty.count
    return ty, None


def _with_elem(ty: ir.Type, elem: ir.Type) -> ir.Type:
    _, n = _split(ty)
    return elem if n is None else ir.VectorType(elem, n)


def _is_float(ty: ir.Type) -> bool:
    return isinstance(_split(ty)[0], (ir.FloatType, ir.DoubleType))


def _width(ty: ir.Type) -> int:
    return _split(ty)[0].width


class LLVMScalar:
    """The scalar vocabulary `m` emitted as LLVM IR through an llvmlite ir.IRBuilder."""

    def __init__(self, builder: ir.IRBuilder, native_f32: bool = True):
        """``native_f32=False`` computes float32 transcendentals through the f64 kernels
        (perf/llvm_math.py times both)."""
        self.b, self.native_f32 = builder, native_f32

    # ------------------------------------------------------------ constants / types
    def const(self, value: float | bool, like: ir.Value | ir.Type) -> ir.Constant:
        """A constant of the type of ``like`` (splatted for vectors)."""
        ty = like if isinstance(like, ir.Type) else like.type
        elem, n = _split(ty)
        if _is_float(ty):
            c = ir.Constant(elem, float(value))
        elif elem.width == 1:
            c = ir.Constant(elem, int(bool(value)))
        else:
            v = int(value) & ((1 << elem.width) - 1)      # wrap, then to signed
            c = ir.Constant(elem, v - (1 << elem.width) if v >> (elem.width - 1) else v)
        return c if n is None else ir.Constant(ty, [c] * n)

    def _args(self, *xs: Operand) -> list[ir.Value]:
        like = next((x for x in xs if isinstance(x, ir.Value)), None)
        if like is None:
            raise TypeError("at least one argument must be an ir.Value")
        return [x if isinstance(x, ir.Value) else self.const(x, like) for x in xs]

    def _intr(self, name: str, *args: ir.Value) -> ir.Value:
        ty = args[0].type
        elem, n = _split(ty)
        suffix = ("f32" if isinstance(elem, ir.FloatType) else "f64") if _is_float(ty) \
            else f"i{elem.width}"
        full = f"llvm.{name}.{suffix if n is None else f'v{n}{suffix}'}"
        mod = self.b.module
        fn = mod.globals.get(full) or ir.Function(
            mod, ir.FunctionType(ty, [a.type for a in args]), full)
        return self.b.call(fn, list(args))

    # ------------------------------------------------------------ arithmetic
    def add(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):
            return self.b.fadd(a, b)
        return self.b.or_(a, b) if _width(a.type) == 1 else self.b.add(a, b)

    def sub(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):
            return self.b.fsub(a, b)
        if _width(a.type) == 1:
            raise TypeError("sub is not defined for bool (as in numpy)")
        return self.b.sub(a, b)

    def mul(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):
            return self.b.fmul(a, b)
        return self.b.and_(a, b) if _width(a.type) == 1 else self.b.mul(a, b)

    def div(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if not _is_float(a.type):
            raise TypeError("div is only defined for floats; cast first")
        return self.b.fdiv(a, b)

    def neg(self, a: ir.Value) -> ir.Value:
        if _is_float(a.type):
            return self.b.fneg(a)                 # not 0 - a: -(+0) must be -0
        if _width(a.type) == 1:
            raise TypeError("neg is not defined for bool (as in numpy)")
        return self.b.sub(self.const(0, a), a)

    def abs(self, a: ir.Value) -> ir.Value:
        if _is_float(a.type):
            return self._intr("fabs", a)
        if _width(a.type) == 1:
            return a
        return self.b.select(self.lt(a, 0), self.b.sub(self.const(0, a), a), a)

    def maximum(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):                     # numpy: a >= b || isnan(a) ? a : b
            keep = self.b.or_(self.ge(a, b), self.b.fcmp_unordered("uno", a, a))
            return self.b.select(keep, a, b)
        return self.b.select(self.ge(a, b), a, b)

    def minimum(self, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):
            keep = self.b.or_(self.le(a, b), self.b.fcmp_unordered("uno", a, a))
            return self.b.select(keep, a, b)
        return self.b.select(self.le(a, b), a, b)

    def _divmod(self, a: Operand, b: Operand) -> tuple[ir.Value, ir.Value]:
        """Python floor division and modulus; numpy's npy_divmod for floats."""
        a, b = self._args(a, b)
        bl = self.b
        if not _is_float(a.type):
            if _width(a.type) == 1:
                raise TypeError("floordiv/remainder are not defined for bool")
            # A zero divisor (or INT_MIN // -1) would trap in idiv: divide by 1 instead.
            int_min = self.const(1 << (_width(a.type) - 1), a)
            zero = self.eq(b, 0)
            bad = bl.or_(zero, bl.and_(self.eq(a, int_min), self.eq(b, -1)))
            bs = bl.select(bad, self.const(1, b), b)
            q, r = bl.sdiv(a, bs), bl.srem(a, bs)   # INT_MIN // -1 wraps to INT_MIN
            fix = bl.and_(self.ne(r, 0), bl.xor(self.lt(r, 0), self.lt(b, 0)))
            q = bl.select(fix, bl.sub(q, self.const(1, q)), q)
            r = bl.select(fix, bl.add(r, b), r)
            return bl.select(zero, self.const(0, q), q), bl.select(zero, self.const(0, r), r)
        mod = bl.frem(a, b)                       # exact fmod (a libm call; not vectorised)
        div = bl.fdiv(bl.fsub(a, mod), b)
        fix = bl.and_(self.ne(mod, 0), bl.xor(self.lt(b, 0), self.lt(mod, 0)))
        mod2 = bl.select(fix, bl.fadd(mod, b), mod)
        mod2 = bl.select(self.ne(mod, 0), mod2, self._intr("copysign", self.const(0, b), b))
        div = bl.select(fix, bl.fsub(div, self.const(1, div)), div)
        fl = self._intr("floor", div)
        fl = bl.select(self.gt(bl.fsub(div, fl), 0.5), bl.fadd(fl, self.const(1, fl)), fl)
        quot = bl.fdiv(a, b)
        fl = bl.select(self.ne(div, 0), fl, self._intr("copysign", self.const(0, a), quot))
        zero = self.eq(b, 0)
        return bl.select(zero, quot, fl), bl.select(zero, mod, mod2)

    def floordiv(self, a: Operand, b: Operand) -> ir.Value:
        return self._divmod(a, b)[0]

    def remainder(self, a: Operand, b: Operand) -> ir.Value:
        return self._divmod(a, b)[1]

    # ------------------------------------------------------------ rounding, sqrt
    def _round(self, name: str, a: ir.Value) -> ir.Value:
        return self._intr(name, a) if _is_float(a.type) else a     # ints are integral

    def floor(self, a: ir.Value) -> ir.Value:
        return self._round("floor", a)

    def ceil(self, a: ir.Value) -> ir.Value:
        return self._round("ceil", a)

    def trunc(self, a: ir.Value) -> ir.Value:
        return self._round("trunc", a)

    def rint(self, a: ir.Value) -> ir.Value:
        return self._round("roundeven", a)        # half to even, like numpy.rint

    def sqrt(self, a: ir.Value) -> ir.Value:
        if not _is_float(a.type):
            raise TypeError("sqrt is only defined for floats; cast first")
        return self._intr("sqrt", a)

    # ------------------------------------------------------------ transcendentals
    def _math(self, fn: Callable, *args: Operand) -> ir.Value:
        args = self._args(*args)
        ty = args[0].type
        if not _is_float(ty):
            raise TypeError(f"{fn.__name__} is only defined for floats; cast first")
        elem, n = _split(ty)
        single = isinstance(elem, ir.FloatType)
        if single and self.native_f32 and fn.__name__ in F32_NATIVE:   # f32 lanes throughout
            e = mathir.Emitter(self.b, n, single=True)
            return getattr(mathlib32, fn.__name__)(e, *[mathir.D(e, a) for a in args]).v
        e = mathir.Emitter(self.b, n)
        xs = [mathir.D(e, self.b.fpext(a, e.ft) if single else a) for a in args]
        res = fn(e, *xs, "s" if single else "d").v
        return self.b.fptrunc(res, ty) if single else res

    def exp(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.exp, x)

    def expm1(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.expm1, x)

    def log(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.log, x)

    def log1p(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.log1p, x)

    def tanh(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.tanh, x)

    def erf(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.erf, x)

    def sin(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.sin, x)

    def cos(self, x: ir.Value) -> ir.Value:
        return self._math(mathlib.cos, x)

    def pow(self, x: Operand, y: Operand) -> ir.Value:
        x, y = self._args(x, y)
        if _is_float(x.type):
            return self._math(mathlib.pow, x, y)
        return self._ipow(x, y)

    def _ipow(self, x: ir.Value, n: ir.Value) -> ir.Value:
        """Integer power by square-and-multiply, unrolled over the exponent's bits."""
        bl, w = self.b, _width(x.type)
        if w == 1:
            return bl.or_(x, self.logical_not(n))             # x**0 = 1, else x
        res, base, k = self.const(1, x), x, n
        for _ in range(w - 1):
            bit = self.ne(bl.and_(k, self.const(1, k)), 0)
            res = bl.select(bit, bl.mul(res, base), res)
            base, k = bl.mul(base, base), bl.lshr(k, self.const(1, k))
        # Negative exponent: 1/x**-n truncated toward zero.
        odd = self.ne(bl.and_(n, self.const(1, n)), 0)
        neg_res = bl.select(self.eq(x, 1), self.const(1, x), bl.select(
            self.eq(x, -1), bl.select(odd, self.const(-1, x), self.const(1, x)),
            self.const(0, x)))
        return bl.select(self.lt(n, 0), neg_res, res)

    # ------------------------------------------------------------ comparisons, logic
    def _cmp(self, op: str, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        if _is_float(a.type):
            if op == "ne":                        # unordered: NaN != NaN is True
                return self.b.fcmp_unordered("!=", a, b)
            return self.b.fcmp_ordered(_FCMP[op], a, b)
        sym = "!=" if op == "ne" else _FCMP[op]
        if _width(a.type) == 1:                   # bool: False < True
            return self.b.icmp_unsigned(sym, a, b)
        return self.b.icmp_signed(sym, a, b)

    def lt(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("lt", a, b)

    def le(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("le", a, b)

    def gt(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("gt", a, b)

    def ge(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("ge", a, b)

    def eq(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("eq", a, b)

    def ne(self, a: Operand, b: Operand) -> ir.Value:
        return self._cmp("ne", a, b)

    def select(self, c: Operand, a: Operand, b: Operand) -> ir.Value:
        a, b = self._args(a, b)
        return self.b.select(self._bool(c), a, b)

    def _bool(self, x: ir.Value) -> ir.Value:
        if isinstance(x, ir.Value) and _width(x.type) == 1 and not _is_float(x.type):
            return x
        return self.cast(x, "bool")

    def logical_and(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.and_(self._bool(a), self._bool(b))

    def logical_or(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.or_(self._bool(a), self._bool(b))

    def logical_xor(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.xor(self._bool(a), self._bool(b))

    def logical_not(self, a: ir.Value) -> ir.Value:
        a = self._bool(a)
        return self.b.xor(a, self.const(1, a))

    # ------------------------------------------------------------ casts
    def cast(self, x: ir.Value, dtype: str) -> ir.Value:
        """numpy ``astype`` semantics; NaN/out-of-range float -> int gives INT_MIN."""
        bl, dst = self.b, _with_elem(x.type, DTYPES[dtype])
        if x.type == dst:
            return x
        if dtype == "bool":
            return self.ne(x, 0)                  # NaN -> True, like numpy
        if _is_float(x.type):
            if _is_float(dst):
                grow = _split(dst)[0] == ir.DoubleType()
                return bl.fpext(x, dst) if grow else bl.fptrunc(x, dst)
            # fptosi is poison out of range: convert an in-range stand-in, then select.
            w = _width(dst)
            ok = bl.and_(self.ge(x, -2.0 ** (w - 1)), self.lt(x, 2.0 ** (w - 1)))
            v = bl.fptosi(bl.select(ok, x, self.const(0, x)), dst)
            return bl.select(ok, v, self.const(1 << (w - 1), dst))
        if _is_float(dst):
            return bl.uitofp(x, dst) if _width(x.type) == 1 else bl.sitofp(x, dst)
        if _width(x.type) == 1:
            return bl.zext(x, dst)
        return bl.sext(x, dst) if _width(dst) > _width(x.type) else bl.trunc(x, dst)
