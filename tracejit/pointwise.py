"""Elementwise functions written over the op table's ops (so they differentiate, trace and run
on CUDA like their parts): fmod, sgn, atan2, lerp, addcmul/addcdiv, nan_to_num, isclose,
allclose, equal, clamp_min/clamp_max in place, and logspace."""
from __future__ import annotations

import numpy as np

from .inplace import inplace
from .methods import _functions, _inplace_method, both, function, method
from .ops import REGISTRY as R
from .ops import dtypes as D
from .tensor import Tensor, apply


@both
def fmod(self, other):
    """C's fmod: the remainder of truncated division, with the sign of the dividend (`%` and
    remainder take the divisor's). Computed as remainder(|a|, |b|) with a's sign: remainder of
    non-negative operands is exact, where a - trunc(a / b) * b is not. |.| is a select, not
    abs(), so the gradient is 1 for the dividend and -trunc(a / b) for the divisor also at 0.
    An integer division by zero raises as `%` does."""
    a = self
    b = other
    a_abs = a.where(~(a < 0), -a)
    b_abs = b.where(~(b < 0), -b) if isinstance(b, Tensor) else (-b if b < 0 else b)
    r = apply(R["remainder"], a_abs, b_abs)
    return r.where(~(a < 0), -r)


@both
def sgn(self):
    return self.sign()          # real tensors: sgn is sign


@both
def atan2(self, other):
    if not isinstance(other, Tensor):
        raise TypeError(f"atan2(): argument 'other' must be Tensor, not {type(other).__name__}")
    dt = D.to_float(D.result_type([t.dtype for t in (self, other) if t.ndim],
                                  [t.dtype for t in (self, other) if not t.ndim], []))
    return apply(R["atan2"], self.to(dt), other.to(dt))


Tensor.arctan2 = Tensor.atan2
_functions["arctan2"] = atan2
_inplace_method("atan2_", lambda t, other: t.atan2(other))


@both
def lerp(self, end, weight):
    """start + weight * (end - start), as torch: from the nearer end (|weight| >= 0.5 counts
    from `end`), so weight 1 gives exactly `end`."""
    if not self.dtype.is_floating_point:
        raise NotImplementedError(f"lerp(): not implemented for {self.dtype.name} tensors")
    diff = end - self
    if not isinstance(weight, Tensor):
        return self + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)
    return (self + weight * diff).where(weight.abs() < 0.5, end - diff * (1 - weight))


@both
def addcmul(self, tensor1, tensor2, *, value=1):
    prod = tensor1 * tensor2
    return self + (prod if value == 1 else value * prod)


@both
def addcdiv(self, tensor1, tensor2, *, value=1):
    if not tensor1.dtype.is_floating_point and not tensor2.dtype.is_floating_point:
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                           "future release addcdiv will perform a true division of tensor1 and "
                           "tensor2. Use addcmul(input, tensor1, 1 / tensor2) or div instead.")
    q = tensor1 / tensor2
    return self + (q if value == 1 else value * q)


for _n in ("lerp", "addcmul", "addcdiv", "fmod"):
    setattr(Tensor, _n + "_", (lambda n: lambda self, *a, **kw: inplace(
        self, lambda t, *o: getattr(t, n)(*o, **kw), *a))(_n))


@both
def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
    if not self.dtype.is_floating_point:
        return self.clone()
    info = np.finfo(self.dtype.np)
    # the replacements are cast to the dtype first, as torch: a float32 posinf=1e300 is inf
    cast = lambda v: float(self.dtype.np.type(v))          # noqa: E731
    hi = float(info.max) if posinf is None else cast(posinf)
    lo = float(info.min) if neginf is None else cast(neginf)
    nan = cast(nan)
    x = self.where(self == self, nan)
    x = x.where(x != float("inf"), hi)
    return x.where(x != float("-inf"), lo)


@both
def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    if not isinstance(other, Tensor):
        raise TypeError(f"isclose(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}")
    if self.dtype is not other.dtype:
        raise RuntimeError(f"{self.dtype.name} did not match {other.dtype.name}")
    exact = self == other           # (on the integers themselves: float64 loses past 2**53)
    if self.dtype.is_bool:
        self, other = self.long(), other.long()
    a, b = (self, other) if self.dtype.is_floating_point else (self.double(), other.double())
    close = exact
    if equal_nan:
        close = close | ((a != a) & (b != b))
    # (integers: their difference is exact before it becomes a float)
    err = (a - b).abs() if self.dtype.is_floating_point else (self - other).abs().double()
    return close | (err.isfinite() & (err <= atol + (b * rtol).abs()))


@both
def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(self.isclose(other, rtol, atol, equal_nan).all())


@method
def equal(self, other) -> bool:
    """True when both have the same shape and the same values (NaN is never equal)."""
    if tuple(self.shape) != tuple(other.shape):
        return False
    return bool((self == other).all())


function(equal)


def clamp_min_(self, min):
    return self.clamp_(min=min)


def clamp_max_(self, max):
    return self.clamp_(max=max)


Tensor.clamp_min_, Tensor.clamp_max_ = clamp_min_, clamp_max_
function(Tensor.clamp_min)
function(Tensor.clamp_max)


@function
def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    from .factories import tensor
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    d = D.get_dtype(dtype) if dtype is not None else D.float32
    vals = np.power(float(base), np.linspace(float(start), float(end), int(steps)))
    return tensor(vals.astype(d.np), device=device, requires_grad=requires_grad)


_inplace_method("nan_to_num_", lambda t, nan=0.0, posinf=None, neginf=None:
                t.nan_to_num(nan, posinf, neginf))
