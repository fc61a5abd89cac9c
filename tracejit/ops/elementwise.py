"""Elementwise entries of the op table.

Each entry is one call to `elementwise(...)`: scalar expression over the vocabulary `m`,
derivative written with Tensor methods, optional numpy fast path, test domain. Broadcasting and
dtype promotion are shared (see base.py); the dispatcher casts every input to the compute dtype,
so an expression always sees operands of one dtype. A vjp entry may be a zero-argument lambda:
it is only evaluated when that input needs a gradient (pow's exponent, for instance).
"""
from __future__ import annotations

import math

import numpy as np

from . import dtypes as D
from .base import OUT, Op, broadcast_shapes, elementwise_dtypes, register

_SQRT_2_OVER_PI = 2.0 / math.sqrt(math.pi)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


def elementwise(name: str, nin: int, expr, vjp=None, *, eager=None, rule: str = "promote",
                saves=None, domain=(-3.0, 3.0), int_ok: bool = True, bool_ok: bool = True,
                cond_inputs: int = 0, params: tuple = (), saved_for=None) -> Op:
    """Register an elementwise op. `rule`: promote | float | compare | logical."""

    def infer(*types, **kw):
        shape = broadcast_shapes(*(t[0] for t in types))
        # after dispatch every non-condition input has the compute dtype
        common = types[cond_inputs][1] if len(types) > cond_inputs else D.bool_
        if name == "cast":
            return shape, D.get_dtype(kw["dtype"])
        return shape, elementwise_dtypes(rule, common)[1]

    if eager is None:
        def eager(*xs, **kw):
            return np.asarray(expr(M, *xs, **kw))
    op = Op(name, "elementwise", nin, infer=infer, eager=eager, vjp=vjp, expr=expr,
            saves=saves, domain=domain, dtype_rule=rule, int_ok=int_ok, bool_ok=bool_ok,
            static=params, saved_for=saved_for)
    op.cond_inputs = cond_inputs
    return register(op)


from .base import M  # noqa: E402  (the numpy vocabulary, for the default eager path)


def _int_passthrough(f):
    """floor/ceil/round/trunc leave integers alone (numpy would turn them into floats)."""
    return lambda x: x.copy() if x.dtype.kind in "iub" else f(x)


def _zeros(g):
    return g.new_zeros(g.shape)


def _int_pow(a, b):
    """Integer powers as torch (and the kernels) compute them: a negative exponent gives 1 for
    a base of 1, +-1 for -1 and 0 otherwise (numpy refuses it)."""
    neg = b < 0
    if not np.any(neg):
        return np.power(a, b)
    r = np.power(a, np.where(neg, 0, b))
    odd = (b % 2).astype(bool)
    small = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0))
    return np.where(neg, small, r).astype(r.dtype)


def _signed(m, x, mag):
    """mag with the sign of x (mag >= 0)."""
    return m.select(m.lt(x, 0), m.neg(mag), mag)


def _tie_split(g, a, b):
    """g, halved where a == b (maximum/minimum send half of it to each operand there)."""
    return (g * 0.5).where(a == b, g)


# --- arithmetic ---
elementwise("add", 2, lambda m, a, b: m.add(a, b), lambda g, out, a, b: (g, g),
            eager=np.add, saves=())
elementwise("sub", 2, lambda m, a, b: m.sub(a, b), lambda g, out, a, b: (g, lambda: -g),
            eager=np.subtract, saves=(), bool_ok=False)
elementwise("mul", 2, lambda m, a, b: m.mul(a, b),
            lambda g, out, a, b: (lambda: g * b, lambda: g * a), eager=np.multiply,
            saves=(0, 1), saved_for={0: (1,), 1: (0,)})
elementwise("div", 2, lambda m, a, b: m.div(a, b),
            lambda g, out, a, b: (lambda: g / b, lambda: -g * a / (b * b)),
            eager=np.true_divide, rule="float", saves=(0, 1), domain=(0.5, 3.0),
            saved_for={0: (1,), 1: (0, 1)})
elementwise("floordiv", 2, lambda m, a, b: m.floordiv(a, b), None, eager=np.floor_divide,
            bool_ok=False, domain=(0.5, 3.0))
elementwise("remainder", 2, lambda m, a, b: m.remainder(a, b),
            lambda g, out, a, b: (g, lambda: -g * (a / b).floor()),
            eager=np.remainder, saves=(0, 1), bool_ok=False, domain=(0.5, 3.0))
elementwise("pow", 2, lambda m, a, b: m.pow(a, b),
            # as torch: 0 where the exponent is 0 (not 0 * inf at a == 0), and the exponent's
            # gradient is 0 at a == 0 for b >= 0 (nan for a < 0, as log(a) is)
            lambda g, out, a, b: (lambda: (g * b * a ** (b - 1)).where(b != 0, 0.0),
                                  lambda: g * (out * a.log()).where((a != 0) | (b < 0), 0.0)),
            eager=lambda a, b: _int_pow(a, b) if a.dtype.kind in "iu" else np.power(a, b),
            bool_ok=False, domain=(0.5, 2.0))
# the backward selects, never multiplies by a 0/1 mask: an inf incoming gradient stays 0 where
# it does not flow (inf * 0 is nan), as in torch; ties split the gradient, and a NaN operand
# (no order) passes it whole to both, as torch's where(a == b, g / 2, g).masked_fill(a < b, 0)
elementwise("maximum", 2, lambda m, a, b: m.maximum(a, b),
            lambda g, out, a, b: (lambda: _tie_split(g, a, b).where(~(a < b), 0.0),
                                  lambda: _tie_split(g, a, b).where(~(a > b), 0.0)),
            eager=np.maximum, saves=(0, 1))
elementwise("minimum", 2, lambda m, a, b: m.minimum(a, b),
            lambda g, out, a, b: (lambda: _tie_split(g, a, b).where(~(a > b), 0.0),
                                  lambda: _tie_split(g, a, b).where(~(a < b), 0.0)),
            eager=np.minimum, saves=(0, 1))
elementwise("clamp", 3, lambda m, x, lo, hi: m.minimum(m.maximum(x, lo), hi),
            # as torch: when lo > hi the output is hi everywhere, so hi gets all of the gradient
            lambda g, out, x, lo, hi: (
                lambda: g.where((x >= lo) & (x <= hi), 0.0),
                lambda: g.where((x < lo) & (lo < hi), 0.0),
                lambda: g.where((x > hi) | (hi < lo), 0.0)),
            saves=(0, 1, 2), bool_ok=False)
elementwise("where", 3, lambda m, c, a, b: m.select(c, a, b),
            lambda g, out, c, a, b: (None, lambda: g.where(c, 0.0), lambda: g.where(~c, 0.0)),
            eager=np.where, saves=(0,), cond_inputs=1)
elementwise("cast", 1, lambda m, x, dtype: m.cast(x, dtype),
            lambda g, out, x, dtype: (g.to(x.dtype),), eager=lambda x, dtype:
            x.astype(D.get_dtype(dtype).np), saves=(), params=("dtype",))

# --- unary ---
elementwise("neg", 1, lambda m, x: m.neg(x), lambda g, out, x: (-g,), eager=np.negative,
            saves=(), bool_ok=False)
elementwise("abs", 1, lambda m, x: m.abs(x), lambda g, out, x: (g * x.sign(),), eager=np.abs,
            saves=(0,), bool_ok=False)
# as torch: (x > 0) - (x < 0), so NaN and -0.0 give +0 (numpy: nan, -0.0)
elementwise("sign", 1,
            lambda m, x: m.select(m.gt(x, 0), m.const(1, x),
                                  m.select(m.lt(x, 0), m.const(-1, x), m.const(0, x))),
            lambda g, out, x: (_zeros(g),),
            eager=lambda x: np.sign(x) if x.dtype.kind != "f" else
            (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype), saves=(), bool_ok=False)
elementwise("exp", 1, lambda m, x: m.exp(x), lambda g, out, x: (g * out,), eager=np.exp,
            rule="float", saves=(OUT,))
elementwise("exp2", 1, lambda m, x: m.exp(m.mul(x, _LN2)), lambda g, out, x: (g * out * _LN2,),
            eager=np.exp2, rule="float", saves=(OUT,))
elementwise("expm1", 1, lambda m, x: m.expm1(x), lambda g, out, x: (g * (out + 1.0),),
            eager=np.expm1, rule="float", saves=(OUT,))
elementwise("log", 1, lambda m, x: m.log(x), lambda g, out, x: (g / x,), eager=np.log,
            rule="float", saves=(0,), domain=(0.1, 5.0))
elementwise("log2", 1, lambda m, x: m.div(m.log(x), _LN2), lambda g, out, x: (g / (x * _LN2),),
            eager=np.log2, rule="float", saves=(0,), domain=(0.1, 5.0))
elementwise("log1p", 1, lambda m, x: m.log1p(x), lambda g, out, x: (g / (x + 1.0),),
            eager=np.log1p, rule="float", saves=(0,), domain=(-0.5, 5.0))
elementwise("sqrt", 1, lambda m, x: m.sqrt(x), lambda g, out, x: (g / (out * 2.0),),
            eager=np.sqrt, rule="float", saves=(OUT,), domain=(0.1, 5.0))
elementwise("rsqrt", 1, lambda m, x: m.div(1.0, m.sqrt(x)),
            lambda g, out, x: (g * out * out * out * -0.5,), rule="float", saves=(OUT,),
            domain=(0.1, 5.0))
elementwise("reciprocal", 1, lambda m, x: m.div(1.0, x), lambda g, out, x: (-g * out * out,),
            rule="float", saves=(OUT,), domain=(0.5, 3.0))
elementwise("square", 1, lambda m, x: m.mul(x, x), lambda g, out, x: (g * x * 2.0,),
            eager=np.square, saves=(0,), bool_ok=False)
elementwise("sin", 1, lambda m, x: m.sin(x), lambda g, out, x: (g * x.cos(),), eager=np.sin,
            rule="float", saves=(0,))
elementwise("cos", 1, lambda m, x: m.cos(x), lambda g, out, x: (-g * x.sin(),), eager=np.cos,
            rule="float", saves=(0,))
elementwise("tan", 1, lambda m, x: m.div(m.sin(x), m.cos(x)),
            lambda g, out, x: (g * (out * out + 1.0),), eager=np.tan, rule="float",
            saves=(OUT,), domain=(-1.2, 1.2))
# sinh/cosh from e^|x|: expm1 keeps sinh exact near 0, and beyond |x| = 20 (e^-|x| below an
# ulp) e^(|x| - ln 2) does not overflow before the result does
elementwise("sinh", 1, lambda m, x: _signed(m, x, m.select(
                m.gt(m.abs(x), 20.0), m.exp(m.sub(m.abs(x), _LN2)),
                m.mul(m.add(m.expm1(m.abs(x)), m.div(m.expm1(m.abs(x)),
                                                    m.add(m.expm1(m.abs(x)), 1.0))), 0.5))),
            lambda g, out, x: (g * x.cosh(),), eager=np.sinh, rule="float", saves=(0,))
elementwise("cosh", 1, lambda m, x: m.add(m.exp(m.sub(m.abs(x), _LN2)),
                                          m.mul(m.exp(m.neg(m.abs(x))), 0.5)),
            lambda g, out, x: (g * x.sinh(),), eager=np.cosh, rule="float", saves=(0,))
elementwise("log10", 1, lambda m, x: m.div(m.log(x), _LN10),
            # (numpy's float32 log10 is 1 ulp off at powers of 10: log10(1000) = 3.0000002)
            lambda g, out, x: (g / (x * _LN10),),
            eager=lambda x: np.log10(x.astype(np.float64)).astype(x.dtype), rule="float",
            saves=(0,),
            domain=(0.1, 5.0))
elementwise("tanh", 1, lambda m, x: m.tanh(x), lambda g, out, x: (g * (1.0 - out * out),),
            eager=np.tanh, rule="float", saves=(OUT,))
elementwise("sigmoid", 1, lambda m, x: m.div(1.0, m.add(1.0, m.exp(m.neg(x)))),
            lambda g, out, x: (g * out * (1.0 - out),), rule="float", saves=(OUT,))
elementwise("relu", 1, lambda m, x: m.maximum(x, m.const(0, x)),
            # (passes the gradient at NaN, as torch's threshold_backward: 0 where out <= 0)
            lambda g, out, x: ((out <= 0)._op("where", 0.0, g),),
            eager=lambda x: np.maximum(x, x.dtype.type(0)), saves=(OUT,), bool_ok=False)
elementwise("erf", 1, lambda m, x: m.erf(x),
            lambda g, out, x: (g * (-(x * x)).exp() * _SQRT_2_OVER_PI,), rule="float",
            saves=(0,))
elementwise("softplus", 1, lambda m, x: m.add(m.maximum(x, 0.0), m.log1p(m.exp(m.neg(m.abs(x))))),
            lambda g, out, x: (g * x.sigmoid(),), eager=lambda x: np.logaddexp(x, x.dtype.type(0)),
            rule="float", saves=(0,), domain=(-20.0, 20.0))
for _name, _f in (("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                  ("round", np.rint)):
    elementwise(_name, 1, (lambda mname: lambda m, x: getattr(m, mname)(x))(
                "rint" if _name == "round" else _name),
                lambda g, out, x: (_zeros(g),), eager=_int_passthrough(_f), saves=(),
                bool_ok=False)

# --- comparisons and logic (no gradient) ---
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    elementwise(_name, 2, (lambda n: lambda m, a, b: getattr(m, n)(a, b))(_name),
                eager=getattr(np, {"lt": "less", "le": "less_equal", "gt": "greater",
                                   "ge": "greater_equal", "eq": "equal",
                                   "ne": "not_equal"}[_name]), rule="compare")
for _name in ("logical_and", "logical_or", "logical_xor"):
    elementwise(_name, 2, (lambda n: lambda m, a, b: getattr(m, n)(a, b))(_name),
                eager=getattr(np, _name), rule="logical")
elementwise("logical_not", 1, lambda m, x: m.logical_not(x), eager=np.logical_not,
            rule="logical")
