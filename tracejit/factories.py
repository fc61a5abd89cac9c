"""Tensor factories (`tensor`, `zeros`, `arange`, `randn`, ...) and the random generator.

Python floats become float32 and ints int64, as in PyTorch. `from_numpy` and `from_dlpack`
share memory with their source.
"""
from __future__ import annotations

import numpy as np

from .ops import dtypes as D
from .tensor import Tensor, _created, _tracer

_rng = {"gen": np.random.default_rng()}


def _gen(generator):
    if _tracer["active"]:
        # a random tensor made at trace time would be baked into the graph: same "random"
        # numbers on every call
        _tracer["break"]("random number generation (rand/randn/randint/randperm) inside a "
                         "compiled function")
    return generator or _rng["gen"]


def manual_seed(seed: int):
    _rng["gen"] = np.random.default_rng(int(seed))
    return _rng["gen"]


def seed() -> int:
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    manual_seed(s)
    return s


def _dtype(dtype, default=None):
    return D.get_dtype(dtype) if dtype is not None else default


def _infer_dtype(data) -> D.DType:
    """PyTorch's rule for nested Python data: bool < int (int64) < float (float32)."""
    kinds = set()
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, Tensor):
            kinds.add(x.dtype)
        elif isinstance(x, (bool, np.bool_)):
            kinds.add(D.bool_)
        elif isinstance(x, (np.integer, np.floating)):     # keeps its dtype, as in torch
            kinds.add(D.from_numpy_dtype(x.dtype))
        elif isinstance(x, int):
            kinds.add(D.int64)
        elif isinstance(x, float):
            kinds.add(D.float32)
        elif x is None:
            raise RuntimeError("tensor(): could not infer dtype of NoneType")
        else:
            raise TypeError(f"tensor(): cannot build a tensor from an element of type "
                            f"{type(x).__name__}")
    if not kinds:
        return D.float32
    out = None
    for k in kinds:
        out = k if out is None else D.promote_types(out, k)
    return out


def _device_check(device):
    """The Device asked for (None: the default, cpu); a clear error if it cannot be used."""
    if device is not None and str(device) not in ("cpu",):
        from .tensor import Device
        dev = Device(device)
        if dev.type == "cuda":
            from . import cuda
            cuda.check_device(dev)
            return dev
    return None


def _on(arr, dev):
    """arr (numpy) on dev: uploaded when dev is CUDA."""
    if dev is None or dev.type == "cpu":
        return arr
    from . import cuda
    return cuda.upload(arr)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dev = _device_check(device)
    if isinstance(data, Tensor):
        if data.is_cuda and device is None:
            dev = data.device          # a copy stays where its source is, as in torch
        arr = np.array(data._data if not data.is_cuda else data._value("tensor()"), copy=True)
        if dtype is not None:
            arr = arr.astype(_dtype(dtype).np)
    elif isinstance(data, (np.ndarray, np.generic)):  # a numpy scalar keeps its dtype, as torch
        D.from_numpy_dtype(data.dtype)
        arr = np.array(data, dtype=_dtype(dtype).np if dtype is not None else None, copy=True)
    else:
        d = _dtype(dtype) or _infer_dtype(data)     # (before tensors become lists)
        if isinstance(data, (list, tuple)):
            data = _unwrap_nested(data)
        try:
            arr = np.array(data, dtype=d.np)
        except OverflowError:
            # a Python int the dtype cannot hold: torch's error (or its wrap of a negative
            # uint8), where numpy raises OverflowError
            obj = np.array(data, dtype=object)
            arr = np.array([D.check_fill(v, d) for v in obj.reshape(-1)],
                           dtype=d.np).reshape(obj.shape)
        except ValueError as e:
            raise ValueError(f"tensor(): could not build a tensor from the data: {e}") from None
    t = _created(Tensor._make(_on(arr, dev)))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _unwrap_nested(data):
    if isinstance(data, (list, tuple)):
        return [_unwrap_nested(x) for x in data]
    if isinstance(data, Tensor):
        return data._data.tolist()
    return data


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    for s in size:      # torch takes ints (and 0-d integer tensors), not floats
        if isinstance(s, float) or (isinstance(s, Tensor) and s.dtype.is_floating_point):
            raise TypeError(f"a size must be a tuple of ints, but got {type(s).__name__} "
                            f"{s!r}")
    out = tuple(int(s) for s in size)
    for s in out:
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(out)}")
    return out


def _sizes(shape: tuple, size, what: str) -> tuple:
    """The shape of zeros(2, 3), zeros((2, 3)) or zeros(size=(2, 3)); zeros() is torch's
    TypeError."""
    if size is not None:
        if shape:
            raise TypeError(f"{what}() got the size both positionally and as size=")
        shape = (size,)
    elif not shape:
        raise TypeError(f"{what}() missing its size, e.g. {what}(2, 3) or {what}((2, 3))")
    return _shape(shape)


def _new(arr, requires_grad, device=None):
    t = _created(Tensor._make(_on(arr, _device_check(device))))
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.zeros(_sizes(shape, size, "zeros"), _dtype(dtype, D.float32).np),
                requires_grad, device)


def ones(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.ones(_sizes(shape, size, "ones"), _dtype(dtype, D.float32).np),
                requires_grad, device)


def empty(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.empty(_sizes(shape, size, "empty"), _dtype(dtype, D.float32).np),
                requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype) or D.scalar_dtype(fill_value)
    fill_value = D.check_fill(fill_value, d)
    return _new(np.full(_shape((size,)), fill_value, d.np), requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False, device=None) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad,
                 device=device or _like_device(t))


def ones_like(t, dtype=None, requires_grad=False, device=None) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device or _like_device(t))


def empty_like(t, dtype=None, requires_grad=False, device=None) -> Tensor:
    return empty(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad,
                 device=device or _like_device(t))


def full_like(t, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device or _like_device(t))


def _like_device(t):
    return t.device if t.is_cuda else None


def arange(start=None, end=None, step=1, dtype=None, device=None,
           requires_grad=False) -> Tensor:
    if start is None:           # arange(end=3)
        if end is None:
            raise TypeError("arange() missing its end, e.g. arange(3) or arange(end=3)")
        start = 0
    elif end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange(): step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange(): upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    start, end, step = (_number(v) for v in (start, end, step))   # (0-d tensors too)
    is_float = any(isinstance(v, float) for v in (start, end, step))
    d = _dtype(dtype) or (D.float32 if is_float else D.int64)
    n = int(np.ceil((end - start) / step))
    arr = (start + np.arange(n, dtype=np.float64) * step) if is_float else \
        np.arange(start, end, step)
    return _new(arr.astype(d.np), requires_grad, device)


def _number(v):
    """A 0-d tensor or numpy scalar as the Python number it holds (a float stays a float)."""
    if isinstance(v, Tensor) or isinstance(v, np.generic):
        return v.item()
    return v


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    if steps < 0:
        raise RuntimeError("linspace(): number of steps must be non-negative")
    d = _dtype(dtype, D.float32)
    return _new(np.linspace(start, end, int(steps)).astype(d.np), requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    for name, v in (("n", n), ("m", m)):
        if v is not None and v < 0:
            raise RuntimeError(f"eye(): {name} must be greater or equal to 0, got {v}")
    return _new(np.eye(n, m, dtype=_dtype(dtype, D.float32).np), requires_grad, device)


def _float_dtype(dtype, what: str) -> D.DType:
    d = _dtype(dtype, D.float32)
    if not d.is_floating_point:
        raise NotImplementedError(f'"{what}" not implemented for {d.name} (random floats need a '
                                  f'floating dtype)')
    return d


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    d = _float_dtype(dtype, "rand")
    g = _gen(generator)
    return _new(g.random(_shape(size), dtype=np.float64).astype(d.np), requires_grad, device)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    d = _float_dtype(dtype, "randn")
    g = _gen(generator)
    return _new(g.standard_normal(_shape(size)).astype(d.np), requires_grad, device)


def randint(low, high=None, size=None, dtype=None, device=None, generator=None) -> Tensor:
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size), as torch
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    g = _gen(generator)
    return _new(g.integers(low, high, _shape((size,))).astype(_dtype(dtype, D.int64).np),
                False, device)


def randperm(n, dtype=None, device=None, generator=None) -> Tensor:
    _shape((n,))                    # (a negative n is an error, as torch)
    g = _gen(generator)
    return _new(g.permutation(n).astype(_dtype(dtype, D.int64).np), False, device)


def rand_like(t, dtype=None) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, device=_like_device(t))


def randn_like(t, dtype=None) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, device=_like_device(t))


def from_numpy(a: np.ndarray) -> Tensor:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy(): expected np.ndarray (got {type(a).__name__})")
    D.from_numpy_dtype(a.dtype)
    return Tensor._make(a)


def from_dlpack(obj) -> Tensor:
    if isinstance(obj, Tensor):
        return obj
    return from_numpy(np.from_dlpack(obj))


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)
