"""Matmul on CUDA: a tiled shared-memory kernel with numpy's batch broadcasting.

Each block computes a TILE x TILE tile of one output matrix; the K dimension is walked in tiles
staged through shared memory (one load per element per block instead of one per product).
Operands are read through their strides, so transposed views (the `a.mT @ g` of every matmul
backward) need no copy. Batch dims are broadcast (stride 0) and merged where the three arrays
allow; one remaining batch dim is `gridDim.z`, more are looped on the host. Integers accumulate
in int64, floats in their own type (as cuBLAS does).
"""
from __future__ import annotations

import itertools

import numpy as np

from ...ops import broadcast_shapes
from . import array as A
from .eager import collapse
from .launch import launcher
from .loader import load
from .scalar import CTOR

TILE = 4 if A.SIM else 16
_kernels: dict = {}


def _source(dt: str) -> str:
    acc = "int64" if dt in ("int32", "int64") else dt
    npd = {"float32": "np.float32", "float64": "np.float64", "int64": "np.int64"}[acc]
    c, ca, t = CTOR[dt], CTOR[acc], TILE
    return f"""def mm_{dt}(ab, ao, asb, asm, ask, bb, bo, bsb, bsk, bsn, yb, yo, ysb, M, N, K):
    sa = cuda.shared.array(({t}, {t}), {npd})
    sb = cuda.shared.array(({t}, {t}), {npd})
    tx = i8(cuda.threadIdx.x)
    ty = i8(cuda.threadIdx.y)
    z = i8(cuda.blockIdx.z)
    row = i8(cuda.blockIdx.y) * {t} + ty
    col = i8(cuda.blockIdx.x) * {t} + tx
    abase = ao + z * asb + row * asm
    bbase = bo + z * bsb + col * bsn
    acc = {ca}(0)
    t0 = i8(0)
    while t0 < K:
        ka = t0 + tx
        sa[ty, tx] = {ca}(ab[abase + ka * ask]) if (row < M and ka < K) else {ca}(0)
        kb = t0 + ty
        sb[ty, tx] = {ca}(bb[bbase + kb * bsk]) if (kb < K and col < N) else {ca}(0)
        cuda.syncthreads()
        for j in range({t}):
            acc = {ca}(acc + sa[ty, j] * sb[j, tx])
        cuda.syncthreads()
        t0 += {t}
    if row < M and col < N:
        yb[yo + z * ysb + row * N + col] = {c}(acc)
"""


def matmul(a, b):
    dt = a.dtype.name
    if dt == "bool":
        raise NotImplementedError("matmul(): not implemented for bool tensors")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    y = A.empty(batch + (m, n), a.dtype)
    if y.size == 0:
        return y
    if k == 0:
        from .eager import full
        return full(y.shape, 0, dt)
    av = A.broadcast_to(a, batch + (m, k))
    bv = A.broadcast_to(b, batch + (k, n))
    nb = len(batch)
    bshape, (sa, sb, sy) = collapse(batch, [av.strides[:nb], bv.strides[:nb], y.strides[:nb]])
    fn = _kernels.get(dt)
    if fn is None:
        fn = _kernels[dt] = load(_source(dt), f"mm_{dt}")
    lead = bshape[:-1] if bshape else ()
    z = bshape[-1] if bshape else 1
    grid = (-(-n // TILE), -(-m // TILE), z)
    for pos in itertools.product(*[range(s) for s in lead]):
        ao = av.offset + sum(p * s for p, s in zip(pos, sa))
        bo = bv.offset + sum(p * s for p, s in zip(pos, sb))
        yo = y.offset + sum(p * s for p, s in zip(pos, sy))
        launcher(fn, grid, (TILE, TILE))(
            av.buf, ao, sa[-1] if bshape else 0, av.strides[-2], av.strides[-1],
            bv.buf, bo, sb[-1] if bshape else 0, bv.strides[-2], bv.strides[-1],
            y.buf, yo, sy[-1] if bshape else 0, m, n, k)
    return y


__all__ = ["TILE", "matmul", "np"]
