"""The op table's building blocks: `Op`, the registry, and the shared elementwise rules.

Every operation is one `Op` in the table (`REGISTRY`). An op carries what every layer needs:
its kind, its output-type rule, its numpy implementation, its scalar expression (elementwise ops:
`expr(m, *xs)` over the scalar vocabulary `m`, which each backend provides once), its derivative
(`vjp(g, out, *inputs, **params)`, written with Tensor methods only so the same rule serves eager
backward, double backward and the traced backward graph), which values the vjp reads (`saves`, for
the version-counter check), and a test domain. Nothing here knows about Tensor or the IR.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import dtypes as D

REGISTRY: dict[str, "Op"] = {}

OUT = -1  # in `saves`: the op's output


class Op:
    """One entry of the op table; see the module docstring."""

    def __init__(self, name: str, kind: str, nin: int, *, infer: Callable,
                 eager: Callable, vjp: Callable | None = None, expr: Callable | None = None,
                 saves: tuple = None, domain=(-3.0, 3.0), dtype_rule: str | None = None,
                 int_ok: bool = True, bool_ok: bool = True, method: bool = True,
                 static: tuple = (), saved_for: dict | None = None) -> None:
        self.name = name
        self.kind = kind          # elementwise | reduce | movement | index | matmul | source
        self.nin = nin            # number of tensor inputs (-1: variadic)
        self.infer = infer        # (*in_types, **params) -> (shape, DType)
        self.eager = eager        # (*arrays, **params) -> ndarray
        self.vjp = vjp            # None: not differentiable
        self.expr = expr
        self.saves = tuple(range(max(nin, 0))) + (OUT,) if saves is None else saves
        # {saved input: the inputs whose gradients read it}: a saved input is kept (and its
        # in-place modification refused) only when one of those requires grad, as torch's
        # mul keeps `a` only for b's gradient. None: every gradient reads every saved input.
        self.saved_for = saved_for
        self.domain = domain
        self.dtype_rule = dtype_rule
        self.int_ok = int_ok
        self.bool_ok = bool_ok
        self.method = method
        self.static = static      # names of params that are part of the op's identity

    def __repr__(self) -> str:
        return f"Op({self.name})"


def register(op: Op) -> Op:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is defined twice in the op table")
    REGISTRY[op.name] = op
    return op


# --- the scalar vocabulary, numpy edition (the reference every backend is tested against) ---

def _np_floordiv(a, b):
    return np.floor_divide(a, b)


def _select(c, a, b):
    return np.where(c, a, b)


def _cast(x, dtype: str):
    return np.asarray(x).astype(D.get_dtype(dtype).np)


class NumpyScalar:
    """`m` for numpy: each primitive of the scalar vocabulary as a numpy ufunc."""
    add = staticmethod(np.add)
    sub = staticmethod(np.subtract)
    mul = staticmethod(np.multiply)
    div = staticmethod(np.true_divide)
    neg = staticmethod(np.negative)
    abs = staticmethod(np.abs)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    floordiv = staticmethod(_np_floordiv)
    remainder = staticmethod(np.remainder)
    floor = staticmethod(np.floor)
    ceil = staticmethod(np.ceil)
    trunc = staticmethod(np.trunc)
    rint = staticmethod(np.rint)
    sqrt = staticmethod(np.sqrt)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    expm1 = staticmethod(np.expm1)
    tanh = staticmethod(np.tanh)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    pow = staticmethod(np.power)
    lt = staticmethod(np.less)
    le = staticmethod(np.less_equal)
    gt = staticmethod(np.greater)
    ge = staticmethod(np.greater_equal)
    eq = staticmethod(np.equal)
    ne = staticmethod(np.not_equal)
    select = staticmethod(_select)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_xor = staticmethod(np.logical_xor)
    logical_not = staticmethod(np.logical_not)
    cast = staticmethod(_cast)

    @staticmethod
    def erf(x):
        return _erf(x)

    @staticmethod
    def const(v, like):
        return np.asarray(v, dtype=np.asarray(like).dtype)


def _erf(x):
    """erf for numpy arrays (numpy has none): scipy's when installed, else a float64 series."""
    x = np.asarray(x)
    try:
        from scipy.special import erf
        out = erf(x.astype(np.float64))
    except ImportError:
        out = _erf_series(x.astype(np.float64))
    return out.astype(x.dtype) if x.dtype.kind == "f" else out


def _erf_series(x: np.ndarray) -> np.ndarray:
    # erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): all terms positive,
    # so no cancellation; |x| >= 6 is +-1 to double precision.
    a = np.minimum(np.abs(x), 6.0)
    term = a.copy()
    total = a.copy()
    for n in range(1, 200):
        term = term * (2.0 * a * a) / (2 * n + 1)
        total += term
    out = 2.0 / np.sqrt(np.pi) * np.exp(-a * a) * total
    out = np.where(np.abs(x) >= 6.0, 1.0, np.minimum(out, 1.0))
    return np.where(np.isnan(x), np.nan, np.copysign(out, x))


M = NumpyScalar()

# --- shared elementwise rules ---


def broadcast_shapes(*shapes: tuple) -> tuple:
    """numpy/PyTorch broadcasting, with PyTorch's error message (RuntimeError)."""
    if len(shapes) == 1:
        return tuple(shapes[0])
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for j in range(ndim - 1, -1, -1):  # trailing dims first: the one PyTorch reports
        first = None  # the shape that set out[j]
        for s in shapes:
            n = _dim(s, j, ndim)
            if n == 1:
                continue
            if out[j] == 1:
                out[j], first = n, s
            elif n != out[j]:
                raise RuntimeError(
                    f"The size of tensor a ({out[j]}) must match the size of tensor b ({n}) at "
                    f"non-singleton dimension {j}; shapes {tuple(first)} and {tuple(s)} "
                    f"cannot be broadcast together")
    return tuple(out)


def _dim(shape, j, ndim):
    k = j - (ndim - len(shape))
    return shape[k] if k >= 0 else 1


def elementwise_dtypes(rule: str, in_dtypes: list) -> tuple:
    """(compute dtype, output dtype) for an elementwise op from its already-promoted input dtype."""
    common = in_dtypes
    if rule == "promote":
        return common, common
    if rule == "float":
        f = D.to_float(common)
        return f, f
    if rule == "compare":
        return common, D.bool_
    if rule == "logical":
        return D.bool_, D.bool_
    raise ValueError(rule)


# --- derived facts about an op's scalar expression ---

_HEAVY = ("exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "erf", "pow")


class _Counter:
    """A vocabulary `m` that only counts the transcendental primitives an expression calls."""

    def __init__(self) -> None:
        self.heavy = 0

    def __getattr__(self, name):
        def prim(*args, **kwargs):
            if name in _HEAVY:
                self.heavy += 1
            return 0.0
        return prim


_heavy_cache: dict = {}


def transcendentals(op: "Op") -> int:
    """How many transcendental primitives one element of an elementwise op evaluates (a cost
    hint for backends, derived from the op's `expr` so no backend keeps a list of op names)."""
    key = op.name
    n = _heavy_cache.get(key)
    if n is None:
        n = 0
        if op.expr is not None:
            c = _Counter()
            try:
                op.expr(c, *([0.0] * max(op.nin, 1)), **{p: None for p in op.static})
                n = c.heavy
            except Exception:  # an expr that needs real params: assume it is heavy
                n = 1
        _heavy_cache[key] = n
    return n
