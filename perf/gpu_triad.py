"""The GPU memory-bandwidth probe of `python -m perf --backend cuda`: a triad c = a + 2*b as a
numba.cuda kernel. A module of its own so that numba.cuda is imported only when it is needed,
and so that the kernel's `cuda` is a module global (Numba's CUDA simulator swaps those)."""
from __future__ import annotations

import numpy as np
from numba import cuda


@cuda.jit
def _triad(a, b, c):
    i = cuda.grid(1)
    if i < c.size:
        c[i] = a[i] + np.float32(2.0) * b[i]


def make(n: int):
    """A zero-argument function running the triad over `n` float32 elements and waiting."""
    a = cuda.to_device(np.ones(n, np.float32))
    b = cuda.to_device(np.full(n, 2.0, np.float32))
    c = cuda.device_array(n, np.float32)

    def run() -> None:
        _triad[(n + 255) // 256, 256](a, b, c)
        cuda.synchronize()
    return run
