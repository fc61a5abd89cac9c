"""A kernel launch straight through the driver: cuLaunchKernel called with ctypes, the
parameters struct-packed into one buffer handed over as CU_LAUNCH_PARAM_BUFFER_POINTER.

cuda.core's `launch` costs ~10.7 us per W4 kernel on the H200 host (perf/RESULTS.md): it
converts each of ~65 parameters (`ParamHolder`) and builds the launch configuration on every
call. Here the layout is fixed once per kernel variant from the driver's own parameter offsets
(`Kernel.arguments_info`), so a launch is one `struct.pack_into` and one foreign call.
`launch.Raw.make` uses it only when, for the first call, the buffer holds at each parameter's
offset exactly the bytes cuda.core hands the driver for numba's packing; otherwise cuda.core
stays. TRACEJIT_CUDA_LAUNCH=core keeps cuda.core's launch.

The library is opened with ctypes.PyDLL, which keeps the GIL during the call: the packed
buffer, one per kernel variant, cannot be rewritten by another thread while the driver reads
it (cuLaunchKernel copies the parameters before returning and does not wait for the GPU).
"""
from __future__ import annotations

import ctypes
import functools
import struct

_PARAM_BUFFER_POINTER, _PARAM_BUFFER_SIZE, _PARAM_END = 1, 2, 0
_driver: list = []


class LaunchError(RuntimeError):
    """cuLaunchKernel returned an error: nothing was launched (the caller retries through
    numba, which sets up a context on this thread or raises numba's error)."""


def cu_launch_kernel():
    """libcuda's cuLaunchKernel (None where there is no driver library)."""
    if not _driver:
        try:
            lib = ctypes.PyDLL("libcuda.so.1")
            f = lib.cuLaunchKernel
            f.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
            f.restype = ctypes.c_int
            _driver.append(f)
        except (OSError, AttributeError):
            _driver.append(None)
    return _driver[0]


# struct codes of the scalar parameters numba passes by value, by numba type name
_CODES = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i",
          "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d",
          "bool": "?"}
_ARRAY_FIELDS = 7           # meminfo, parent, nitems, itemsize, data, shape, strides (1-d)


class Plan:
    """The packed layout of one kernel's parameters: `conv`, per kernel argument, the Python
    type a scalar is given as (None for an array, whose fields come packed as ints)."""

    def __init__(self, conv: list, fmt: str, size: int, offsets: list, sizes: list) -> None:
        self.conv, self.struct, self.size = conv, struct.Struct(fmt), size
        self.offsets, self.sizes = offsets, sizes

    @classmethod
    def make(cls, argtypes, T, info):
        """The plan for numba argument types `argtypes` (module `T` is numba's types) and the
        driver's (offset, size) per parameter, or None for a type or layout it does not know."""
        codes, conv = [], []
        for ty in argtypes:
            if isinstance(ty, T.Array):
                if ty.ndim != 1:
                    return None
                codes += ["q"] * _ARRAY_FIELDS
                conv.append(None)
                continue
            code = _CODES.get(str(ty))
            if code is None:
                return None
            codes.append(code)
            conv.append(float if code in "fd" else bool if code == "?" else int)
        pairs = [(p.offset, p.size) if hasattr(p, "offset") else tuple(p) for p in info]
        if len(pairs) != len(codes):
            return None
        fmt, at = "<", 0
        for (off, size), code in zip(pairs, codes):
            if off < at or struct.calcsize("<" + code) != size:
                return None
            fmt += "x" * (off - at) + code
            at = off + size
        return cls(conv, fmt, at, [o for o, _ in pairs], [s for _, s in pairs])

    def same(self, values: list, driver_bytes: list) -> bool:
        """Whether `values` packed give each parameter the bytes `driver_bytes` (what cuda.core
        passes for numba's packing), at the driver's offsets."""
        try:
            ours = self.struct.pack(*values)
        except (struct.error, TypeError):
            return False
        return len(driver_bytes) == len(self.offsets) and all(
            ours[o:o + s] == b[:s] for o, s, b in zip(self.offsets, self.sizes, driver_bytes))

    def go(self, fn, cfg, launch_kernel):
        """(*values) -> None: pack and launch CUfunction/CUkernel address `fn` under numba
        launch configuration `cfg` (3-d grid and block, shared memory, a cuda.core stream)."""
        buf = (ctypes.c_uint64 * max(1, -(-self.size // 8)))()
        size = ctypes.c_size_t(self.size)
        extra = (ctypes.c_void_p * 5)(_PARAM_BUFFER_POINTER, ctypes.addressof(buf),
                                      _PARAM_BUFFER_SIZE, ctypes.addressof(size), _PARAM_END)
        stream = int(getattr(cfg.stream, "handle", cfg.stream) or 0)
        call = functools.partial(launch_kernel, fn, *cfg.griddim, *cfg.blockdim,
                                 cfg.sharedmem, stream, None, extra)
        pack_into = functools.partial(self.struct.pack_into, buf, 0)

        def go(*values, _keep=(buf, size, extra)) -> None:
            try:
                pack_into(*values)
            except struct.error as e:       # a value its parameter cannot hold: not launched
                raise TypeError(str(e)) from e
            err = call()
            if err:
                raise LaunchError(f"cuLaunchKernel failed with CUresult {err}")
        return go
