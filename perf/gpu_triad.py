"""The GPU memory-bandwidth probe of `python -m perf --backend cuda`: a triad c = a + 2*b as a
numba.cuda kernel, or a device-to-device copy where that kernel cannot be compiled. A module of
its own so that numba.cuda is imported only when it is needed, and so that the kernel's `cuda`
is a module global (Numba's CUDA simulator swaps those)."""
from __future__ import annotations

import numpy as np
from numba import cuda


@cuda.jit
def _triad(a, b, c):
    i = cuda.grid(1)
    if i < c.size:
        c[i] = a[i] + np.float32(2.0) * b[i]


def make(n: int):
    """(run, bytes moved per run, what it is): `run()` does one pass and waits for it."""
    a = cuda.to_device(np.ones(n, np.float32))
    b = cuda.to_device(np.full(n, 2.0, np.float32))
    c = cuda.device_array(n, np.float32)

    def triad() -> None:
        _triad[(n + 255) // 256, 256](a, b, c)
        cuda.synchronize()

    def copy() -> None:
        c.copy_to_device(a)
        cuda.synchronize()
    try:
        triad()
        return triad, 3 * n * 4, "triad c = a + 2*b as a numba.cuda kernel"
    except Exception as exc:  # noqa: BLE001 - numba's kernel compiler can fail on a numpy mismatch
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:80]
        return copy, 2 * n * 4, f"device-to-device copy (the triad kernel failed: {why})"
