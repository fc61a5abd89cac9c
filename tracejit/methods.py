"""Tensor methods and module-level functions.

Every elementwise op of the table becomes a method and a function automatically (`x.exp()`,
`tracejit.exp(x)`); the rest are thin wrappers that normalise PyTorch-style arguments and call
`apply`, and composite ops (mean, var, logsumexp, softmax, ...) written with other ops, so they
need no vjp of their own and trace like everything else.
"""
from __future__ import annotations

import collections

import numpy as np

from . import autograd as ag
from . import indexing
from .inplace import inplace
from .ops import REGISTRY
from .ops import dtypes as D
from .tensor import Tensor, _tracer, _created, _norm_dim, apply, norm_dims

R = REGISTRY
_functions: dict = {}


def function(f):
    """Also expose `f` as `tracejit.<name>`."""
    _functions[f.__name__] = f
    return f


def method(f):
    setattr(Tensor, f.__name__, f)
    return f


def both(f):
    return function(method(f))


# --- elementwise ops from the table ---
def _make_elementwise(op):
    def f(self, *others, other=None):
        return apply(op, self, *others, *(() if other is None else (other,)))   # (other=)
    f.__name__ = op.name
    f.__doc__ = f"Elementwise `{op.name}` (see the op table)."
    return f


_SKIP = {"cast", "clamp", "where", "pow", "sub", "add", "div", "round"}
for _op in R.values():
    if _op.kind == "elementwise" and _op.name not in _SKIP:
        both(_make_elementwise(_op))


@both
def round(self, *, decimals=0):  # noqa: A001
    """Half to even; with decimals, torch's round(x * 10**d) / 10**d (d < 0: x / 10**-d)."""
    if not decimals:
        return apply(R["round"], self)
    if not self.dtype.is_floating_point:
        raise NotImplementedError("round(): decimals is only supported for floating tensors")
    if self.dtype is D.float16:     # scaled in float32, as torch (x * 100 rounds in float16)
        return round(self.float(), decimals=decimals).half()
    scale = 10.0 ** abs(decimals)
    if decimals > 0:
        return apply(R["round"], self * scale) / scale
    return apply(R["round"], self / scale) * scale


Tensor.floor_divide = Tensor.floordiv
_functions["floor_divide"] = Tensor.floordiv
Tensor.greater, Tensor.less, Tensor.equal_ = Tensor.gt, Tensor.lt, Tensor.eq
Tensor.absolute = Tensor.abs
Tensor.negative = Tensor.neg


def _scaled(name: str, self, other, alpha):
    """other * alpha, in the dtype self and other promote to (as torch: bool + bool * 2 stays
    bool, and a float alpha is refused only for an integral result). alpha is a number, as in
    PyTorch; inside a compiled function a float argument arrives as a traced 0-d tensor
    (`p.add_(buf, alpha=-lr)` with lr an argument)."""
    if isinstance(alpha, Tensor):
        if not (_tracer["active"] and alpha.ndim == 0):
            raise TypeError(f"{name}(): argument 'alpha' must be Number, not Tensor")
        return other * alpha
    if alpha == 1 and not isinstance(alpha, float):
        return other
    if isinstance(self, Tensor) and isinstance(other, Tensor) and self.dtype is other.dtype \
            and self.dtype.is_floating_point:           # (optimizers: p.add_(d, alpha=-lr))
        return other * alpha
    ts = [t for t in (self, other) if isinstance(t, Tensor)]
    dt = D.result_type([t.dtype for t in ts if t.ndim], [t.dtype for t in ts if not t.ndim],
                       [D.scalar_dtype(x) for x in (self, other) if not isinstance(x, Tensor)])
    if isinstance(alpha, float) and not dt.is_floating_point:
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")
    D.check_fill(alpha, dt)                 # (an int alpha the dtype cannot hold: torch's error)
    if not isinstance(other, Tensor):
        return other * alpha
    other = other.to(dt)
    return other * bool(alpha) if dt.is_bool else other * alpha


@both
def add(self, other, *, alpha=1):
    return apply(R["add"], self, _scaled("add", self, other, alpha))


@both
def sub(self, other, *, alpha=1):
    return apply(R["sub"], self, _scaled("sub", self, other, alpha))


Tensor.subtract = Tensor.sub
Tensor.multiply = Tensor.mul


@both
def div(self, other, *, rounding_mode=None):
    if rounding_mode is None:
        return apply(R["div"], self, other)
    if rounding_mode == "floor":
        return apply(R["floordiv"], self, other)
    if rounding_mode == "trunc":
        ts = [t for t in (self, other) if isinstance(t, Tensor)]
        dt = D.result_type([t.dtype for t in ts if t.ndim], [t.dtype for t in ts if not t.ndim],
                           [] if isinstance(other, Tensor) else [D.scalar_dtype(other)])
        if dt.is_floating_point or dt.is_bool:
            q = apply(R["div"], self, other).trunc()
            return q if dt.is_floating_point else q.to(dt)
        # integers: exact (a float quotient loses digits past 2**24), and a zero divisor
        # raises as in floor division; floor rounds down where the signs differ
        self = self.to(dt)
        other = other.to(dt) if isinstance(other, Tensor) else other
        f = apply(R["floordiv"], self, other)
        inexact = (self - f * other) != 0
        return f + (inexact & ((self < 0) != (other < 0))).to(dt)
    raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                       f"found '{rounding_mode}'")


Tensor.divide = Tensor.true_divide = Tensor.div
_functions["divide"] = _functions["true_divide"] = div


@function
def rsub(input, other, *, alpha=1):
    """other - alpha * input (torch.rsub)."""
    return sub(other, input, alpha=alpha)


@both
def pow(self, exponent):
    if not isinstance(self, Tensor):
        return apply(R["pow"], self, exponent)
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if type(exponent) is int and exponent < 0 and not self.dtype.is_floating_point:
            # torch refuses a negative Python exponent (a tensor of them computes, see pow)
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if exponent == 2:
            return apply(R["square"], self) if not self.dtype.is_bool else \
                apply(R["pow"], self, exponent)
        if exponent == 1:
            return self.clone() if not self.requires_grad else self * 1
        if exponent in (0.5, -0.5) and self.dtype.is_floating_point:
            # torch computes these as sqrt and rsqrt: -inf gives nan and -0.0 gives -0.0 and
            # -inf, where C's pow gives inf, +0.0 and +inf
            return apply(R["sqrt" if exponent > 0 else "rsqrt"], self)
    return apply(R["pow"], self, exponent)


def _checked_result_type(*operands) -> D.DType:
    """The dtype tensors and Python numbers promote to, each number checked to fit it (torch
    refuses `int8.clamp(-1000, 1000)`; a negative uint8 number wraps in `apply`)."""
    ts = [t for t in operands if isinstance(t, Tensor)]
    scalars = [x for x in operands if not isinstance(x, Tensor)]
    dt = D.result_type([t.dtype for t in ts if t.ndim], [t.dtype for t in ts if not t.ndim],
                       [D.scalar_dtype(x) for x in scalars])
    for x in scalars:
        D.check_fill(x, dt)
    return dt


@both
def clamp(self, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    # the result's dtype promotes self with the bounds given; a missing bound is that dtype's
    # extreme (not self's: an int8 tensor clamped to a float or int64 tensor is not clipped to
    # int8's range)
    given = [b for b in (min, max) if b is not None]
    plain = (int, float, type(None))        # (`all` is the tensor method in this module)
    if self.dtype.is_floating_point and type(min) in plain and type(max) in plain:
        dt = self.dtype                     # (the common case, without the promotion rules)
        if dt is not D.float64:
            for b in given:
                D.check_fill(b, dt)
    else:
        dt = _checked_result_type(self, *given)
    if dt.is_floating_point:
        ext = (-np.inf, np.inf)
    elif dt.is_bool:
        ext = (False, True)
    else:
        ext = (int(np.iinfo(dt.np).min), int(np.iinfo(dt.np).max))
    return apply(R["clamp"], self, ext[0] if min is None else min,
                 ext[1] if max is None else max)


Tensor.clip = Tensor.clamp
_functions["clip"] = clamp


def clamp_min(self, min):
    return self.clamp(min=min)


def clamp_max(self, max):
    return self.clamp(max=max)


Tensor.clamp_min, Tensor.clamp_max = clamp_min, clamp_max


@function
def where(condition, input=None, other=None):
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    _checked_result_type(input, other)
    return apply(R["where"], condition, input, other)


@method
def where_(self, condition, other):  # noqa: D401 - Tensor.where(condition, y)
    _checked_result_type(self, other)
    return apply(R["where"], condition, self, other)


Tensor.where = where_
del Tensor.where_


@both
def masked_fill(self, mask, value):
    # the result keeps self's dtype (torch casts the fill value: 1.5 fills an int tensor as 1)
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {value.ndim} dimension(s).")
    if not isinstance(value, Tensor):
        value = D.check_fill(value, self.dtype)
        value = _created(Tensor._make(np.asarray(value).astype(self._data.dtype)))
    elif value.dtype is not self.dtype:
        value = value.to(self.dtype)
    return apply(R["where"], mask, value, self)


def _rdims(dim, ndim: int) -> tuple:
    """Reduction dims: as norm_dims, but an empty tuple/list means all dims, as in torch."""
    if isinstance(dim, (tuple, list)) and not dim:
        dim = None
    return norm_dims(dim, ndim)


@both
def nonzero(self, *, as_tuple=False):
    a = self._value("nonzero()")
    if a.ndim == 0:             # torch: a 0-d tensor's nonzero has shape (count, 0)
        if not as_tuple:
            out = Tensor._make(np.zeros((int(bool(a)), 0), np.int64))
            return out.to(self.device) if self.is_cuda else out
        a = a.reshape(1)
    nz = np.nonzero(a)
    if as_tuple:
        out = tuple(Tensor._make(i.astype(np.int64)) for i in nz)
        return tuple(t.to(self.device) for t in out) if self.is_cuda else out
    out = Tensor._make(np.stack(nz, axis=1).astype(np.int64) if nz else
                       np.zeros((0, 0), np.int64))
    return out.to(self.device) if self.is_cuda else out


@both
def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
    for a in args:
        if isinstance(a, Tensor):       # the other tensor's dtype and device, as torch
            dtype, device = a.dtype, a.device
        elif isinstance(a, (D.DType, type)) or (isinstance(a, str) and
                                                 a.replace("tracejit.", "") in D._BY_NAME):
            dtype = a
        else:
            device = a
    if device is not None:
        from .factories import _device_check
        _device_check(device)
        from .cuda import to_device
        moved = to_device(self, device)
        if moved is not self:
            return moved if dtype is None else moved.to(dtype)
    if dtype is None:
        return self.clone() if copy else self
    d = D.get_dtype(dtype)
    if d is self.dtype:
        return self.clone() if copy else self
    return apply(R["cast"], self, dtype=d.name)


def _caster(name):
    def f(self):
        return self.to(D.get_dtype(name))
    f.__name__ = name
    return f


for _n in ("float", "double", "long", "int", "bool", "half"):
    setattr(Tensor, _n, _caster({"bool": "bool"}.get(_n, _n)))


@method
def type_as(self, other):
    return self.to(other.dtype)


@method
def cpu(self):
    return self.to("cpu")


@method
def cuda(self, device=None):
    return self.to("cuda" if device is None else
                   f"cuda:{device}" if isinstance(device, int) else device)


@both
def clone(self, *, memory_format=None):
    return apply(R["copy"], self)


@method
def contiguous(self, memory_format=None):
    if not self._is_symbolic and self._data.flags.c_contiguous:
        return self
    out = apply(R["copy"], self)
    if _tracer["active"]:
        _tracer["alias"](out, self)     # eager may return self: writes to it must not be lost
        if out._is_symbolic:            # returned, it is replayed on the input (jit/aliases.py)
            out._data.meta["contiguous"] = True
    return out


@method
def is_contiguous(self, memory_format=None) -> bool:
    if self._is_symbolic:   # a traced value's layout is not known (the key has no strides)
        return bool(self._value("is_contiguous() of a traced tensor"))
    return bool(self._data.flags.c_contiguous)


@method
def new_zeros(self, *size, dtype=None, requires_grad=False):
    return _new_full(self, size, 0, dtype)


@method
def new_ones(self, *size, dtype=None, requires_grad=False):
    return _new_full(self, size, 1, dtype)


@method
def new_full(self, size, fill_value, dtype=None, requires_grad=False):
    return _new_full(self, (size,), fill_value, dtype)


@method
def new_empty(self, *size, dtype=None, requires_grad=False):
    return _new_full(self, size, 0, dtype)


@method
def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    from .factories import tensor
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                  requires_grad=requires_grad)


def _new_full(self, size, value, dtype):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    d = D.get_dtype(dtype) if dtype is not None else self.dtype
    value = D.check_fill(value, d)
    dt = d.name
    if self.is_cuda:  # made on the GPU, not copied there
        from . import cuda
        return Tensor._make(cuda.full(tuple(int(s) for s in size), value, dt))
    return apply(R["full"], shape=tuple(int(s) for s in size), value=value, dtype=dt)


# --- operators ---
def _r(name):
    op = R[name]
    return lambda self, other: apply(op, other, self)


Tensor.__add__ = Tensor.__radd__ = lambda s, o: apply(R["add"], s, o)
Tensor.__sub__ = lambda s, o: apply(R["sub"], s, o)
Tensor.__rsub__ = _r("sub")
Tensor.__mul__ = Tensor.__rmul__ = lambda s, o: apply(R["mul"], s, o)
Tensor.__truediv__ = lambda s, o: apply(R["div"], s, o)
Tensor.__rtruediv__ = _r("div")
Tensor.__floordiv__ = lambda s, o: apply(R["floordiv"], s, o)
Tensor.__rfloordiv__ = _r("floordiv")
Tensor.__mod__ = lambda s, o: apply(R["remainder"], s, o)
Tensor.__rmod__ = _r("remainder")
Tensor.__pow__ = pow
Tensor.__rpow__ = _r("pow")
Tensor.__neg__ = lambda s: apply(R["neg"], s)
Tensor.__pos__ = lambda s: s
Tensor.__abs__ = lambda s: apply(R["abs"], s)
Tensor.__lt__ = lambda s, o: apply(R["lt"], s, o)
Tensor.__le__ = lambda s, o: apply(R["le"], s, o)
Tensor.__gt__ = lambda s, o: apply(R["gt"], s, o)
Tensor.__ge__ = lambda s, o: apply(R["ge"], s, o)
# (torch: comparing with None is plain False / True, not an error)
Tensor.__eq__ = lambda s, o: False if o is None else apply(R["eq"], s, o)
Tensor.__ne__ = lambda s, o: True if o is None else apply(R["ne"], s, o)


def _logical(name):
    op = R["logical_" + name]

    def f(self, other):
        o = other if isinstance(other, Tensor) else None
        if not self.dtype.is_bool or (o is not None and not o.dtype.is_bool) or \
                (o is None and not isinstance(other, bool)):
            # NotImplementedError (a RuntimeError), as torch's "bitwise_and_cpu not implemented"
            raise NotImplementedError(f"bitwise {name} is only supported on bool tensors in "
                                      f"tracejit (got {self.dtype.name}); use logical_{name}")
        return apply(op, self, other)
    return f


Tensor.__and__ = Tensor.__rand__ = _logical("and")
Tensor.__or__ = Tensor.__ror__ = _logical("or")
Tensor.__xor__ = Tensor.__rxor__ = _logical("xor")


def _invert(self):
    if not self.dtype.is_bool:
        raise TypeError(f"~ is only supported on bool tensors in tracejit (got {self.dtype.name})")
    return apply(R["logical_not"], self)


Tensor.__invert__ = _invert
Tensor.__getitem__ = indexing.getitem
Tensor.__setitem__ = indexing.setitem

# --- in-place ---


def _inplace_method(name, fn):
    def f(self, *args, **kw):
        return inplace(self, lambda t, *o: fn(t, *o, **kw), *args)
    f.__name__ = name
    setattr(Tensor, name, f)


def _numpy_inplace(self, other, ufunc, alpha=1):
    """Optimizer-style updates (`buf.mul_(m).add_(g)`, `p.add_(g, alpha=-lr)`) without a graph
    to record: numpy writes straight into the buffer instead of computing out of place and
    copying back. Returns None when the general path is needed (autograd, tracing, CUDA, dtype
    promotion, broadcasting beyond self's shape)."""
    d = self._data
    if type(d) is not np.ndarray or _tracer["active"] or not d.flags.writeable or \
            d.dtype.kind not in "fi":
        return None
    if isinstance(other, Tensor):
        o = other._data
        if type(o) is not np.ndarray or o.dtype != d.dtype or \
                (ag._state["grad"] and (self.requires_grad or other.requires_grad)):
            return None
        if o.shape != d.shape and np.broadcast_shapes(o.shape, d.shape) != d.shape:
            return None
    elif type(other) is float and d.dtype.kind == "f" or \
            type(other) is int and ufunc is not np.true_divide:
        if ag._state["grad"] and self.requires_grad:
            return None
        o = other
    else:
        return None
    if ufunc is np.true_divide and d.dtype.kind != "f":
        return None
    if alpha != 1:
        if d.dtype.kind != "f":
            return None
        o = o * alpha
    ufunc(d, o, out=d)
    self._version[0] += 1
    return self


def _fast_inplace(name, ufunc, slow):
    def f(self, other, *, alpha=1, **kw):
        if not kw:
            r = _numpy_inplace(self, other, ufunc, alpha)
            if r is not None:
                return r
        return inplace(self, lambda t, o: slow(t, o, alpha=alpha, **kw), other)
    f.__name__ = name
    setattr(Tensor, name, f)


_fast_inplace("add_", np.add, lambda t, o, alpha: t.add(o, alpha=alpha))
_fast_inplace("sub_", np.subtract, lambda t, o, alpha: t.sub(o, alpha=alpha))
_fast_inplace("mul_", np.multiply, lambda t, o, alpha: t * o)
_fast_inplace("div_", np.true_divide,
              lambda t, o, alpha, rounding_mode=None: t.div(o, rounding_mode=rounding_mode))
_inplace_method("pow_", lambda t, o: t ** o)
_inplace_method("clamp_", lambda t, min=None, max=None: t.clamp(min, max))
_inplace_method("masked_fill_", lambda t, m, v: t.masked_fill(m, v))
_inplace_method("copy_", lambda t, src: (src if isinstance(src, Tensor) else t.new_tensor(src))
                .to(t.device).to(t.dtype).expand(t.shape) + t.new_zeros(()))  # (any device)
_inplace_method("fill_", lambda t, v: t.new_full(t.shape, v) if not isinstance(v, Tensor)
                else v.to(t.dtype).expand(t.shape) + t.new_zeros(()))
_inplace_method("zero_", lambda t: t.new_zeros(t.shape))
for _n in ("exp", "log", "sqrt", "tanh", "sigmoid", "relu", "neg", "abs", "floor", "ceil",
           "round", "trunc", "sin", "cos", "reciprocal", "tan", "sinh", "cosh", "log10"):
    _inplace_method(_n + "_", (lambda n: lambda t, **kw: getattr(t, n)(**kw))(_n))
Tensor.clip_ = Tensor.clamp_
_inplace_method("__ipow__", lambda t, o: t ** o)        # x **= y updates x (and its views)
_inplace_method("__ifloordiv__", lambda t, o: t // o)
_inplace_method("__imod__", lambda t, o: t % o)
_inplace_method("__iand__", lambda t, o: t & o)
_inplace_method("__ior__", lambda t, o: t | o)
_inplace_method("__ixor__", lambda t, o: t ^ o)
Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_

# --- reductions ---
return_types = collections.namedtuple("max", ["values", "indices"])


@both
def sum(self, dim=None, keepdim=False, *, dtype=None):
    return _reduce_as(R["sum"], self, dim, keepdim, dtype)


@both
def prod(self, dim=None, keepdim=False, *, dtype=None):
    return _reduce_as(R["prod"], self, dim, keepdim, dtype)


def _reduce_as(op, x, dim, keepdim, dtype):
    """A sum or product, of and in `dtype` when given (an int8 sum wraps, a bool one is
    any(), as torch; the op itself widens integers to int64)."""
    if dtype is None:
        return apply(op, x, dims=_rdims(dim, x.ndim), keepdim=keepdim)
    x = x.to(dtype)
    out = apply(op, x, dims=_rdims(dim, x.ndim), keepdim=keepdim)
    return out if out.dtype is x.dtype else out.to(x.dtype)


@both
def mean(self, dim=None, keepdim=False, *, dtype=None):
    x = self if dtype is None else self.to(dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype.name}")
    if x.dtype is D.float16:    # accumulated in float32, as torch (a float16 sum overflows)
        return x.float().mean(dim, keepdim).half()
    dims = _rdims(dim, x.ndim)
    n = int(np.prod([x.shape[d] for d in dims])) if dims else 1
    return apply(R["sum"], x, dims=dims, keepdim=keepdim) / float(n) if n else \
        apply(R["sum"], x, dims=dims, keepdim=keepdim) * float("nan")


@both
def amax(self, dim=(), keepdim=False):
    return apply(R["amax"], self, dims=norm_dims(dim if dim != () else None, self.ndim),
                 keepdim=keepdim)


@both
def amin(self, dim=(), keepdim=False):
    return apply(R["amin"], self, dims=norm_dims(dim if dim != () else None, self.ndim),
                 keepdim=keepdim)


def _extreme(name):
    red, arg = ("amax", "argmax") if name == "max" else ("amin", "argmin")

    def f(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return apply(R["maximum" if name == "max" else "minimum"], self, dim)
        if dim is None:
            return apply(R[red], self, dims=norm_dims(None, self.ndim), keepdim=False)
        d = _norm_dim(dim, self.ndim)
        idx = apply(R[arg], self, dim=d, keepdim=True)
        values = self.gather(d, idx) if self.ndim else self.clone()
        if not keepdim and self.ndim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return return_types(values, idx)
    f.__name__ = name
    return f


max = both(_extreme("max"))
min = both(_extreme("min"))


def _no_bool(t, name: str) -> None:
    if t.dtype is D.bool_:
        raise RuntimeError(f"{name}(): does not support bool input; convert with .int() first")


@both
def argmax(self, dim=None, keepdim=False):
    _no_bool(self, "argmax")
    return apply(R["argmax"], self, dim=None if dim is None else _norm_dim(dim, self.ndim),
                 keepdim=keepdim)


@both
def argmin(self, dim=None, keepdim=False):
    _no_bool(self, "argmin")
    return apply(R["argmin"], self, dim=None if dim is None else _norm_dim(dim, self.ndim),
                 keepdim=keepdim)


@both
def all(self, dim=None, keepdim=False):
    return apply(R["all"], self, dims=_rdims(dim, self.ndim), keepdim=keepdim)


@both
def any(self, dim=None, keepdim=False):
    return apply(R["any"], self, dims=_rdims(dim, self.ndim), keepdim=keepdim)


@both
def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if self.dtype is D.float16:  # in float32, as torch
        return self.float().var(dim, keepdim=keepdim, correction=correction).half()
    dims = _rdims(dim, self.ndim)
    n = int(np.prod([self.shape[d] for d in dims])) if dims else 1
    mu = self.mean(dims, keepdim=True)
    d = self - mu
    return (d * d).sum(dims, keepdim=keepdim) / float(builtins_max(n - correction, 0))


def builtins_max(a, b):
    return a if a > b else b


@both
def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _sqrt_zero_grad(self.var(dim, unbiased, keepdim, correction=correction))


def _sqrt_zero_grad(v):
    """sqrt(v) whose gradient is 0 where v == 0 (as torch's std and norm backward), not
    0 * inf = nan: the sqrt reads 1 there and its result is replaced by 0."""
    nz = v != 0
    return v.where(nz, 1.0).sqrt().where(nz, 0.0)


@both
def logsumexp(self, dim, keepdim=False):
    if not self.dtype.is_floating_point:        # integers and bools: in the default float
        self = self.to(D.float32)
    dims = _rdims(dim, self.ndim)
    if self.numel():
        m = self.amax(dims, keepdim=True).detach()
        m = m.where(m.isfinite(), 0.0)
    else:  # no max to subtract; the empty sum gives log(0) = -inf, as in torch
        m = self.new_zeros([1 if i in dims else n for i, n in enumerate(self.shape)])
    s = (self - m).exp().sum(dims, keepdim=True).log() + m
    return s if keepdim else s.squeeze(dims)


@both
def isfinite(self):
    if not self.dtype.is_floating_point:
        return self.new_full(self.shape, True, dtype=D.bool_)
    return (self - self) == 0


@both
def isnan(self):
    return self != self


@both
def isinf(self):
    if not self.dtype.is_floating_point:        # integers and bools are never infinite
        return self != self
    return (self.abs() == float("inf"))


@both
def softmax(self, dim, dtype=None):
    x = self if dtype is None else self.to(dtype)
    if not x.dtype.is_floating_point:
        raise NotImplementedError(f"softmax() not implemented for {x.dtype.name} (pass "
                                  f"dtype=tracejit.float32 or convert with .float())")
    if x.numel() == 0:
        return x.clone()            # (no max to subtract over an empty dim)
    e = (x - x.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


@both
def log_softmax(self, dim, dtype=None):
    x = self if dtype is None else self.to(dtype)
    if not x.dtype.is_floating_point:
        raise NotImplementedError(f"log_softmax() not implemented for {x.dtype.name} (pass "
                                  f"dtype=tracejit.float32 or convert with .float())")
    if x.numel() == 0:
        return x.clone()            # (no max to subtract over an empty dim)
    z = x - x.amax(dim, keepdim=True).detach()
    return z - z.exp().sum(dim, keepdim=True).log()
