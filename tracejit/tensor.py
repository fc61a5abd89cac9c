"""Tensor and the one dispatch function every op goes through.

`apply(op, *args, **params)` promotes elementwise operands (PyTorch's rule, ops/dtypes.py),
runs the op's numpy implementation, and records an autograd `Node` when grad mode is on and an
input requires grad. A Tensor's `_data` is a numpy array, or, while a compiled function is being
traced, a symbolic value that the tracer installed; then `apply` hands the op to the tracer hook
(set by jit.py) instead of running it. Methods are attached in methods.py.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import autograd as ag
from .ops import REGISTRY, broadcast_shapes
from .ops import dtypes as D
from .ops.dtypes import DType

_ndarray = np.ndarray
_state = ag._state
# numpy warns about inf/nan results ("divide by zero encountered in log"); PyTorch is silent and
# the values already say it. Only warnings raised from tracejit's own frames are silenced (no
# per-op cost, unlike np.errstate).
warnings.filterwarnings("ignore", message=".*encountered in", category=RuntimeWarning,
                        module=r"tracejit\.")
_CAST = REGISTRY["cast"]
# installed by jit while a function is traced: every op goes to "hook"; "created" keeps the
# tensors made inside the traced function (they become graph constants, not implicit inputs)
_tracer = {"hook": None, "inplace": None, "value": None, "active": False, "created": None}


class Device:
    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None) -> None:
        if isinstance(spec, Device):
            spec, index = spec.type, spec.index
        s = str(spec)
        if ":" in s:
            s, i = s.split(":", 1)
            index = int(i)
        if s not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device "
                               f"string: {spec}")
        self.type, self.index = s, index

    def __eq__(self, other) -> bool:
        try:
            o = Device(other)
        except (RuntimeError, ValueError):
            return False
        return self.type == o.type and (self.index or 0) == (o.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None
                                               else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")
CUDA0 = Device("cuda", 0)


def _on_device(d) -> bool:
    """Whether an array is a CUDA array (codegen/cuda/array.py marks its class)."""
    return hasattr(type(d), "__tracejit_device__")


class Tensor:
    __slots__ = ("_data", "requires_grad", "_grad", "grad_fn", "_out_idx", "_version", "_base",
                 "_hooks", "__weakref__")
    __hash__ = object.__hash__
    __array_priority__ = 1000  # numpy defers binary operators to us

    def __init__(self, *args, **kwargs) -> None:
        raise TypeError("create tensors with tracejit.tensor(data), tracejit.zeros(...), etc.")

    @classmethod
    def _make(cls, data, requires_grad=False, grad_fn=None, version=None, base=None):
        t = object.__new__(cls)
        t._data = data
        t.requires_grad = requires_grad
        t._grad = None
        t.grad_fn = grad_fn
        t._out_idx = 0
        t._version = [0] if version is None else version
        t._base = base
        t._hooks = None
        return t

    # --- metadata ---
    @property
    def shape(self) -> tuple:
        return Size(self._data.shape)

    @property
    def dtype(self) -> DType:
        return D.from_numpy_dtype(self._data.dtype)

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    @property
    def device(self) -> Device:
        d = self._data
        if type(d) is _ndarray:
            return CPU
        if _on_device(d):
            return CUDA0
        # a traced value (an IR node) is on the device of the trace's inputs
        return CUDA0 if _tracer["active"] and _tracer["device"]() == "cuda" else CPU

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_cuda(self) -> bool:
        return type(self._data) is not _ndarray and _on_device(self._data)

    @property
    def _is_symbolic(self) -> bool:
        d = self._data
        return type(d) is not _ndarray and not _on_device(d)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim=None):
        if dim is None:
            return self.shape
        return self._data.shape[_norm_dim(dim, self.ndim)]

    def numel(self) -> int:
        n = 1
        for s in self._data.shape:
            n *= s
        return n

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def data(self) -> "Tensor":
        return self.detach()

    # --- values out (graph breaks while tracing) ---
    def _value(self, what: str) -> np.ndarray:
        if type(self._data) is not _ndarray:
            if _on_device(self._data):
                from . import cuda
                return cuda.value(self._data, what)
            if not _tracer["active"]:
                raise _escaped()
            return _tracer["value"](self, what)
        return self._data

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force and type(self._data) is _ndarray:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self._value("numpy()")

    def __array__(self, dtype=None, copy=None):
        a = self._value("__array__")
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return np.array(a, copy=True) if copy else a

    def item(self):
        a = self._value("item()")
        if a.size != 1:
            raise RuntimeError(f"a Tensor with {a.size} elements cannot be converted to Scalar; "
                               f"item() needs a tensor of exactly one element")
        return a.reshape(()).item()

    def tolist(self):
        return self._value("tolist()").tolist()

    def __bool__(self) -> bool:
        a = self._value("bool()")
        if a.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"(shape {tuple(a.shape)}); use .any() or .all()")
        return bool(a.reshape(()))

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def _scalar(self, what: str):
        if self.numel() != 1:   # torch's ValueError (item() raises RuntimeError)
            raise ValueError(f"only one element tensors can be converted to Python scalars "
                             f"({what}() of a tensor of shape {tuple(self.shape)})")
        return self.item()

    def __format__(self, spec: str) -> str:
        # f"{loss:.4f}" formats a 0-d tensor's value, as torch does
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __index__(self) -> int:
        if not (self.dtype.is_integer or self.dtype.is_bool) or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __dlpack__(self, *args, **kwargs):
        return self._value("__dlpack__").__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._value("__dlpack_device__").__dlpack_device__()

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __repr__(self) -> str:
        from .printing import tensor_repr
        return tensor_repr(self)

    # --- autograd ---
    @property
    def grad(self):
        """The gradient that backward() accumulated into this leaf (None before), as in PyTorch.
        A compiled function's trace sees every read and write (tracejit/jit/trace.py)."""
        if _tracer["active"]:
            _tracer["grad"](self, self._grad, False)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                            f"type {type(value).__name__}")
        if value is not None and not self._is_symbolic:
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"attempting to assign a gradient of size "
                                   f"'{list(value.shape)}' to a tensor of size "
                                   f"'{list(self.shape)}'. Please ensure that the gradient and "
                                   f"the tensor are the same size")
            if value.dtype is not self.dtype:
                raise RuntimeError(f"attempting to assign a gradient with dtype "
                                   f"'{value.dtype.name}' to a tensor with dtype "
                                   f"'{self.dtype.name}'")
        if _tracer["active"]:
            _tracer["grad"](self, value, True)
        self._grad = value

    def detach(self) -> "Tensor":
        if _tracer["active"]:
            return apply(REGISTRY["detach"], self)
        return Tensor._make(self._data, False, None, self._version, self)

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. "
                                   "If you want to use a computed variable in a subgraph that "
                                   "doesn't require differentiation use var_no_grad = var.detach()")
            return self
        if requires_grad and not (self.dtype.is_floating_point):
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients "
                               f"(got {self.dtype.name})")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        if _tracer["active"]:
            _tracer["break"]("retain_grad() inside a compiled function")
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None:
            return
        import weakref
        r = self.grad_fn.retains or {}
        r[self._out_idx] = weakref.ref(self)
        self.grad_fn.retains = r

    @property
    def retains_grad(self) -> bool:
        r = self.grad_fn.retains if self.grad_fn is not None else None
        return bool(r) and self._out_idx in r and r[self._out_idx]() is self

    def register_hook(self, hook):
        if _tracer["active"]:
            _tracer["break"]("register_hook() inside a compiled function")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            return ag.RemovableHandle(self._hooks, hook)
        hooks = self.grad_fn.pre_hooks
        if hooks is None:
            hooks = self.grad_fn.pre_hooks = {}
        lst = hooks.setdefault(self._out_idx, [])
        lst.append(hook)
        return ag.RemovableHandle(lst, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if _tracer["active"]:
            return _tracer["backward"](self, gradient, retain_graph, create_graph, inputs)
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                                   f"(this tensor has shape {tuple(self.shape)}); pass "
                                   f"gradient= with the same shape, or reduce it (e.g. .sum())")
            gradient = Tensor._make(np.ones(self._data.shape, self._data.dtype))
            fn = self.grad_fn
            if type(self._data) is not _ndarray and _on_device(self._data) and not (
                    getattr(fn, "takes_host_seed", False) and not fn.pre_hooks and
                    not fn.retains and self._data.ndim == 0):
                from . import cuda  # a fill kernel: an upload would wait for the forward
                gradient = Tensor._make(cuda.full(self._data.shape, 1, self.dtype.name))
        else:       # (checked as autograd.grad checks its grad_outputs)
            gradient = ag._root_grads(Tensor, [self], [gradient], "backward()")[0]
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        ag.run_backward(Tensor, [self], [gradient], retain_graph=retain_graph,
                        create_graph=create_graph, inputs=inputs, accumulate=True)


class WeakScalar(Tensor):
    """A Python float argument of a traced function: a 0-d graph input that promotes like a
    Python scalar (so `x_f32 * lr` stays float32, exactly as in eager)."""
    __slots__ = ()


class Size(tuple):
    """torch.Size: a tuple that prints as one."""
    __slots__ = ()

    def __repr__(self) -> str:
        return f"tracejit.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    # a slice or a sum with a tuple stays a Size, as torch's
    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, other)) if isinstance(other, tuple) else NotImplemented

    def __radd__(self, other):
        return Size(other + tuple(self)) if isinstance(other, tuple) else NotImplemented


def _norm_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def norm_dims(dim, ndim: int) -> tuple:
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        dims = tuple(sorted({_norm_dim(d, ndim) for d in dim}))
        if len(dims) != len(dim):
            raise RuntimeError(f"dim {tuple(dim)} appears multiple times in the list of dims")
        return dims
    d = _norm_dim(dim, ndim)        # (a 0-d tensor takes -1 and 0)
    return (d,) if ndim else ()


# --- dispatch ---


def _is_number(x) -> bool:
    return isinstance(x, (int, float, bool, np.number, np.bool_))


def _promote(op, args):
    """Cast every operand of an elementwise op to its compute dtype (scalars become 0-d)."""
    start = getattr(op, "cond_inputs", 0)
    if not start and op.dtype_rule != "logical":
        # fast path: Tensors of one floating dtype, and Python floats/ints (which never change
        # a floating dtype), need no cast under any other rule
        d = None
        scalars = False
        for a in args:
            if isinstance(a, Tensor):
                ad = a._data.dtype
                if d is None:
                    d = ad
                elif ad is not d and ad != d:
                    break
            elif type(a) is float or type(a) is int:
                scalars = True
            else:
                break
        else:
            if d is not None and d.kind == "f":
                if not scalars:
                    return args
                return [a if isinstance(a, Tensor) else _created(Tensor._make(np.asarray(a, d)))
                        for a in args]
    if any(type(a) is _ndarray for a in args):  # numpy arrays act as tensors, as in torch
        args = [Tensor._make(a) if type(a) is _ndarray else a for a in args]
    dim, zero, sc = [], [], []
    for a in args[start:]:
        if isinstance(a, Tensor):
            if type(a) is WeakScalar:
                sc.append(D.default_float)
            else:
                (dim if a._data.shape else zero).append(a.dtype)
        elif _is_number(a):
            sc.append(D.scalar_dtype(a))
        else:
            raise TypeError(f"{op.name}(): expected Tensor or number operands, got "
                            f"{type(a).__name__}")
    common = D.result_type(dim, zero, sc)
    rule = op.dtype_rule
    if op is _SUB and D.bool_ in dim + zero + sc:
        raise RuntimeError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` "
            "or `logical_xor()` operator instead." if common.is_bool else
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
            "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    if common.is_bool and not op.bool_ok and rule != "logical":
        # NotImplementedError (a RuntimeError) as torch's "not implemented for 'Bool'"
        raise NotImplementedError(f"{op.name}(): not supported on bool tensors; convert with "
                                  f".int() or .float() first")
    compute = D.to_float(common) if rule == "float" else (D.bool_ if rule == "logical"
                                                         else common)
    out = []
    for i, a in enumerate(args):
        want = compute if i >= start else D.bool_
        if isinstance(a, Tensor):
            if a._data.dtype != want.np:
                if i < start:
                    raise RuntimeError(f"{op.name}(): the condition must be a bool tensor, got "
                                       f"{a.dtype.name}")
                a = apply(_CAST, a, dtype=want.name)
            out.append(a)
        else:
            out.append(_created(Tensor._make(_scalar_array(a, want.np))))
    return out


def _scalar_array(a, dtype) -> np.ndarray:
    """A Python scalar as a 0-d array of dtype; an int out of an integer dtype's range wraps
    around, as torch's (numpy 2 raises OverflowError)."""
    try:
        return np.asarray(a, dtype=dtype)
    except OverflowError:
        if type(a) is int and dtype.kind in "iu" and -2 ** 63 <= a < 2 ** 64:
            return np.asarray(a & (2 ** 64 - 1), np.uint64).astype(dtype)
        raise


def _created(t: Tensor) -> Tensor:
    """Note a tensor made inside a function being traced (it becomes a graph constant)."""
    c = _tracer["created"]
    if c is not None:
        c.append(t)
    return t


def _escaped() -> RuntimeError:
    return RuntimeError(
        "this tensor was made while tracejit.compile traced a function and has no value: it "
        "escaped the trace (stored in a list, an attribute, a dict such as an optimizer's "
        "param_groups read inside the function). Return it from the compiled function instead, "
        "or read it outside")


def apply(op, *args, **params):
    """Run one op-table entry on Tensors (the single dispatch point)."""
    kind = op.kind
    if kind == "elementwise" and op is not _CAST:
        args = _promote(op, args)
    if _tracer["active"]:
        return _tracer["hook"](op, args, params)
    datas = [a._data for a in args]
    try:
        out = op.eager(*datas, **params)
        if type(out) is not _ndarray:
            out = np.asarray(out)
    except (FloatingPointError, ZeroDivisionError) as e:
        raise RuntimeError(f"{op.name}(): {e}") from None
    except ValueError as e:
        if "negative integer powers" in str(e):
            raise RuntimeError("Integers to negative integer powers are not allowed.") from None
        if kind == "elementwise":  # numpy's broadcast error -> PyTorch's RuntimeError
            try:
                broadcast_shapes(*(d.shape for d in datas))
            except RuntimeError as err:
                raise err from None
        raise
    except TypeError:
        # numpy refuses CUDA arrays (TypeError): run the op on the GPU instead. Only here, so
        # the numpy path pays nothing for CUDA support.
        if not any(_on_device(d) for d in datas):
            if any(a._is_symbolic for a in args):
                raise _escaped() from None
            raise
        from . import cuda
        out = cuda.run(op, datas, params)
    if op in _INT_DIV and out.dtype.kind in "iu" and type(out) is _ndarray:
        _check_int_div(datas[1], op)
    # only floating outputs take part in autograd (x.long(), argmax, x > 0 never require grad)
    if _state["grad"] and op.vjp is not None and out.dtype.kind == "f":
        for a in args:
            if a.requires_grad:
                t = Tensor._make(out, True)
                t.grad_fn = ag.Node(op, params, args, t)
                if kind in _VIEW_KINDS and _shares_buffer(out, datas[0]):
                    src = args[0]
                    t._version = src._version
                    t._base = src._base if src._base is not None else src
                    t.grad_fn.view_v = (t._base.grad_fn,)  # the history the view hangs from
                return t
    if kind in _VIEW_KINDS and _shares_buffer(out, datas[0]):
        src = args[0]
        return Tensor._make(out, False, None, src._version,
                            src._base if src._base is not None else src)
    return Tensor._make(out)


_INT_DIV = (REGISTRY["floordiv"], REGISTRY["remainder"])
_SUB = REGISTRY["sub"]
_VIEW_KINDS = ("movement", "index")


def _shares_buffer(out: np.ndarray, src: np.ndarray) -> bool:
    """Whether `out` is a view of `src`'s buffer: then the two tensors share a version counter,
    so an in-place write through either is seen by autograd's saved-tensor checks. (A base that
    is neither, e.g. the temporary behind a fancy-indexing result, is a copy.)"""
    b = out.base
    return out is src or (b is not None and (b is src or (b is src.base and b is not None)))


def _check_int_div(b, op):
    if not np.all(b):
        raise RuntimeError(f"ZeroDivisionError: integer {op.name} by zero")


def call(name: str, *args, **params):
    return apply(REGISTRY[name], *args, **params)


def as_tensor(x, dtype=None) -> Tensor:
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype is dtype else x.to(dtype)
    from .factories import from_numpy, tensor
    if type(x) is _ndarray and (dtype is None or D.get_dtype(dtype).np == x.dtype):
        try:
            return from_numpy(x)            # shares x's memory, as torch.as_tensor does
        except TypeError:
            pass                            # a dtype tensors do not have: tensor() says so
    return tensor(x, dtype=dtype)
