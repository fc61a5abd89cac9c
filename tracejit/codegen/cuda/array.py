"""`CudaArray`: what a CUDA tensor's `_data` is - a strided view of a 1-D numba device buffer.

Shape, element strides and element offset live on the host, so every view numpy makes without a
copy (reshape, permute, expand, slicing, flip) is one here too, and kernels read any view through
its strides. Views are computed by numpy itself on a stand-in array whose strides point at a
1-element buffer (`_stand_in`): numpy never touches the memory of a view it makes, so the
rules are numpy's exactly. The class refuses the numpy protocols (`__array_ufunc__ = None`,
`__array__` raises TypeError as torch's CUDA tensors do): an op-table numpy implementation that
meets one raises TypeError, which is how `tensor.apply` sends the op to `eager.py`.
"""
from __future__ import annotations

import numpy as np
from numba import config, cuda

SIM = bool(config.ENABLE_CUDASIM)
if not hasattr(np, "row_stack"):
    # numba-cuda (<= 0.30) registers an overload of np.row_stack, removed in numpy 2.5, the
    # first time it compiles anything: give it the alias numpy used to have
    np.row_stack = np.vstack
config.CUDA_LOW_OCCUPANCY_WARNINGS = 0   # small eager ops are small grids, by design
DTYPES = ("float32", "float64", "int32", "int64", "bool")
_NUMPY_MSG = ("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
              "tensor to host memory first.")


class _Flags:
    __slots__ = ("c_contiguous", "writeable")

    def __init__(self, c: bool, w: bool) -> None:
        self.c_contiguous, self.writeable = c, w


class CudaArray:
    __slots__ = ("base", "buf", "dtype", "offset", "shape", "strides", "writeable")
    __tracejit_device__ = "cuda"
    __array_ufunc__ = None
    device_index = 0

    def __init__(self, buf, shape, strides, offset, dtype, base=None, writeable=True) -> None:
        self.buf = buf                       # 1-D numba device array: the allocation
        self.shape = tuple(shape)
        self.strides = tuple(strides)        # in elements
        self.offset = int(offset)            # in elements
        self.dtype = np.dtype(dtype)
        self.base = base                     # the owning CudaArray of a view (numpy's rule)
        self.writeable = writeable

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def flags(self) -> _Flags:
        return _Flags(self.strides == contiguous_strides(self.shape) or self.size <= 1,
                      self.writeable)

    # --- numpy refuses us (see the module docstring) ---
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_NUMPY_MSG)

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented

    def _refuse(self, *args, **kwargs):
        raise TypeError("a CUDA array has no numpy methods; tracejit runs its ops on the GPU")

    reshape = transpose = astype = __getitem__ = __setitem__ = _refuse

    # --- what the autograd engine and in-place ops need ---
    def copy(self) -> CudaArray:
        from . import eager
        return eager.copy(self)

    def copy_from(self, other) -> None:
        from . import eager
        eager.copy_into(self, other)

    def __iadd__(self, other):
        from . import eager
        eager.add_into(self, other)
        return self

    def copy_to_host(self) -> np.ndarray:
        return to_host(self)

    def __del__(self):
        # an owner's buffer goes back to the pool (views keep their owner alive)
        if self.base is None and _pool is not None:
            try:
                _release(self.buf, self.dtype)
            except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing to keep
                pass

    def __repr__(self) -> str:
        return f"CudaArray(shape={self.shape}, dtype={self.dtype}, strides={self.strides})"


def contiguous_strides(shape) -> tuple:
    out, s = [], 1
    for n in reversed(tuple(shape)):
        out.append(s)
        s *= max(n, 1)
    return tuple(reversed(out))


_OK_DTYPES = frozenset(np.dtype(d) for d in DTYPES)


def check_dtype(dtype) -> None:
    if dtype in _OK_DTYPES:         # (np.dtype objects, and the type objects equal to them)
        return
    name = np.dtype(dtype).name
    if name not in DTYPES:
        raise RuntimeError(f"dtype {name} is not supported on CUDA by tracejit (supported: "
                           f"{', '.join(DTYPES)}); convert first, e.g. .float() or .int()")


# A caching allocator, as torch's: numba allocates with cuMemAlloc and frees (cuMemFree, which
# synchronises the device) in batches. Freed buffers are kept by (size, dtype) and handed out
# again; every kernel runs on the default stream, so a reused buffer's old work is done first.
# `_live` holds every buffer an owner CudaArray has (id -> (buffer, pool key)): a CudaArray
# dropped in a reference cycle (autograd graphs) is collected by the cyclic GC, which runs
# weakref callbacks before __del__; were its buffer reachable only through it, numba's callback
# would free the memory first and __del__ would then pool a dead buffer (a later kernel writing
# freed memory).
_pool: dict = {}
_pooled = [0]
_live: dict = {}
POOL_BYTES = 64 << 20 if SIM else 8 << 30


def _release(buf, dtype) -> None:
    """Pool an owner's buffer. Only buffers the pool handed out (in `_live`): the mapped
    index-error flag, say, is host memory, never to be handed out as a device buffer."""
    rec = _live.pop(id(buf), None)
    if rec is None:
        return
    key = rec[1]
    nbytes = key[0] * dtype.itemsize
    if _pooled[0] + nbytes <= POOL_BYTES:
        free = _pool.get(key)
        if free is None:
            free = _pool[key] = []
        free.append(buf)
        _pooled[0] += nbytes


def _alloc(n: int, dtype):
    key = (n, dtype)
    free = _pool.get(key)
    if free:
        _pooled[0] -= n * dtype.itemsize
        buf = free.pop()
        _live[id(buf)] = (buf, key)
        return buf
    try:
        buf = cuda.device_array(n, dtype)
    except Exception:  # noqa: BLE001 - out of memory: give the pool back and retry once
        import gc
        gc.collect()        # first: arrays dropped in cycles release their buffers to the pool
        _pool.clear()
        _pooled[0] = 0
        buf = cuda.device_array(n, dtype)
    _live[id(buf)] = (buf, key)
    return buf


def empty(shape, dtype) -> CudaArray:
    dtype = np.dtype(dtype)
    check_dtype(dtype)
    shape = tuple(int(s) for s in shape)
    strides = _strides.get(shape)
    if strides is None:
        if len(_strides) > 4096:
            _strides.clear()
        strides = _strides[shape] = contiguous_strides(shape)
    n = strides[0] * max(shape[0], 1) if shape else 1
    return CudaArray(_alloc(n if 0 not in shape else 1, dtype), shape, strides, 0, dtype)


_strides: dict = {}       # shape -> contiguous strides (a step allocates the same shapes)


def spec(shape, dtype) -> tuple:
    """What `fresh` takes to allocate `empty(shape, dtype)`, computed once by a caller that
    allocates the same shape on every call (a kernel's stores)."""
    a = empty(shape, dtype)
    key = (a.buf.size, a.dtype)
    return a.shape, a.strides, key, key[0] * a.dtype.itemsize


def fresh(shape: tuple, strides: tuple, key: tuple, nbytes: int) -> CudaArray:
    """empty() from a `spec`, without its conversions and checks (host time per kernel)."""
    free = _pool.get(key)
    if free:                            # _alloc's pool hit, inlined
        _pooled[0] -= nbytes
        buf = free.pop()
        _live[id(buf)] = (buf, key)
    else:
        buf = _alloc(*key)              # (first: a failed allocation leaves no half array)
    a = _new(CudaArray)
    a.buf, a.shape, a.strides, a.offset, a.dtype = buf, shape, strides, 0, key[1]
    a.base, a.writeable = None, True
    return a


_new = object.__new__


def from_host(a: np.ndarray) -> CudaArray:
    check_dtype(a.dtype)
    a = np.asarray(a, order="C")      # (not ascontiguousarray: it makes a 0-d array 1-d)
    flat = a.reshape(-1) if a.size else np.zeros(1, a.dtype)
    buf = cuda.to_device(flat)
    _live[id(buf)] = (buf, (flat.size, flat.dtype))
    return CudaArray(buf, a.shape, contiguous_strides(a.shape), 0, a.dtype)


def index_error_flag():
    """The flag index kernels set on an out-of-range index (checked at host reads). It lives
    in mapped (zero-copy) host memory, so a synchronisation reads it without a copy: a device
    flag cost each synchronised step a device-to-host copy. Where mapped memory cannot be had,
    it is a device buffer copied back instead."""
    if _err["flag"] is None:
        try:
            buf = cuda.mapped_array(1, np.int32)
            buf[0] = 0
            _err["flag"], _err["mapped"] = CudaArray(buf, (1,), (1,), 0, np.dtype(np.int32)), True
        except Exception:  # noqa: BLE001 - no mapped memory here: a device flag
            _err["flag"], _err["mapped"] = from_host(np.zeros(1, np.int32)), False
    _err["armed"] = True
    return _err["flag"]


def check_index_errors(synced: bool = True) -> None:
    """Raise the IndexError of an earlier kernel, as CUDA reports device-side asserts: at the
    next synchronisation (a copy to the host, tj.cuda.synchronize()). `synced`: the caller has
    waited for the device already (a mapped flag is read only after the kernels are done)."""
    if not _err["armed"]:
        return
    _err["armed"] = False
    buf = _err["flag"].buf
    if _err["mapped"]:
        if not synced:
            cuda.synchronize()
        hit = int(buf[0])
        if hit:
            buf[0] = 0
    else:
        hit = int(buf.copy_to_host()[0])
        if hit:
            buf.copy_to_device(np.zeros(1, np.int32))
    if hit:
        raise IndexError("index out of range in an index tensor used on a CUDA tensor (found "
                         "by an earlier kernel; CUDA reports it at the next synchronisation)")


_err: dict = {"flag": None, "armed": False, "mapped": False}


def to_host(a: CudaArray) -> np.ndarray:
    """A fresh numpy array with a's values; copies only the span of the buffer a covers."""
    check_index_errors(synced=False)
    if a.size == 0:
        return np.zeros(a.shape, a.dtype)
    lo = a.offset + sum(s * (n - 1) for s, n in zip(a.strides, a.shape) if s < 0)
    hi = a.offset + sum(s * (n - 1) for s, n in zip(a.strides, a.shape) if s > 0)
    span = a.buf[lo:hi + 1].copy_to_host()
    v = np.lib.stride_tricks.as_strided(span[a.offset - lo:], a.shape,
                                        [s * a.itemsize for s in a.strides])
    return np.array(v, copy=True)


def view(a: CudaArray, shape, strides, offset, writeable=None) -> CudaArray:
    return CudaArray(a.buf, shape, strides, offset, a.dtype, a.base if a.base is not None else a,
                     a.writeable if writeable is None else writeable)


def _stand_in(a: CudaArray) -> tuple:
    one = np.empty(1, a.dtype)
    return np.lib.stride_tricks.as_strided(one, a.shape, [s * a.itemsize for s in a.strides]), \
        one.__array_interface__["data"][0]


def _like(a: CudaArray, v: np.ndarray, ptr0: int, writeable=None) -> CudaArray:
    off = a.offset + (v.__array_interface__["data"][0] - ptr0) // a.itemsize
    return view(a, v.shape, [s // a.itemsize for s in v.strides], off, writeable)


def reshape(a: CudaArray, shape) -> CudaArray | None:
    """A view with the new shape, or None when numpy would have to copy."""
    v, p = _stand_in(a)
    w = v.view()
    try:
        w.shape = tuple(shape)
    except AttributeError:
        return None
    return _like(a, w, p)


def transpose(a: CudaArray, dims) -> CudaArray:
    return view(a, [a.shape[d] for d in dims], [a.strides[d] for d in dims], a.offset)


def broadcast_to(a: CudaArray, shape) -> CudaArray:
    shape = tuple(shape)
    if shape == a.shape:
        return a
    lead = len(shape) - a.ndim
    strides = [0] * lead + [0 if n == 1 and m != 1 else s
                            for s, n, m in zip(a.strides, a.shape, shape[lead:])]
    return view(a, shape, strides, a.offset, writeable=False)


def basic_index(a: CudaArray, key: tuple) -> CudaArray:
    """a[key] for a key of ints, slices and None (a view, as numpy's basic indexing)."""
    v, p = _stand_in(a)
    return _like(a, v[tuple(key) + (Ellipsis,)], p)   # (an all-int key would give a scalar)


def flip(a: CudaArray, dims) -> CudaArray:
    v, p = _stand_in(a)
    return _like(a, np.flip(v, dims), p)


def sm_count() -> int:
    """Multiprocessors of the current device (launch sizes aim to fill them)."""
    global _SMS
    if _SMS is None:
        _SMS = 2 if SIM else int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return _SMS


_SMS = None
