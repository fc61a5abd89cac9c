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

# The register-blocked float kernel: T x T threads, each computing R x R outputs of a
# (T*R) x (T*R) block tile, K staged BK at a time (a 4x4 register block reads shared memory
# once per 2 multiply-adds, where one output per thread reads it twice per multiply-add).
# Off until measured on a GPU: it is correct under the simulator (tests/test_cuda.py), and
# perf/gpu_check.py `knob` times W2 with it off and on.
BLOCKED = False
T, R, BK = (2, 2, 4) if A.SIM else (16, 4, 16)


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


def _blocked_source(dt: str) -> str:
    """The register-blocked kernel for float dtype `dt` (see BLOCKED). Tiles are loaded with
    consecutive threads along whichever of an operand's axes has stride 1 (`a_kfast`,
    `b_nfast`: runtime flags, uniform per launch), so transposed views load coalesced too."""
    npd, c, bm = {"float32": "np.float32", "float64": "np.float64"}[dt], CTOR[dt], T * R
    per = BK * bm // (T * T)                    # elements each thread loads per tile
    lines = [f"def mmb_{dt}(ab, ao, asb, asm, ask, bb, bo, bsb, bsk, bsn, yb, yo, ysb, M, N, "
             f"K, a_kfast, b_nfast):",
             f"    sa = cuda.shared.array(({BK}, {bm}), {npd})",
             f"    sb = cuda.shared.array(({BK}, {bm}), {npd})",
             "    tx = i8(cuda.threadIdx.x)", "    ty = i8(cuda.threadIdx.y)",
             f"    tid = ty * {T} + tx", "    z = i8(cuda.blockIdx.z)",
             f"    m0 = i8(cuda.blockIdx.y) * {bm}", f"    n0 = i8(cuda.blockIdx.x) * {bm}",
             "    abase = ao + z * asb", "    bbase = bo + z * bsb"]
    lines += [f"    c{i}_{j} = {c}(0)" for i in range(R) for j in range(R)]
    lines += ["    t0 = i8(0)", "    while t0 < K:"]
    for q in range(per):                # stage this tile: A[m0:, t0:] and B[t0:, n0:]
        lin = f"tid + {q * T * T}"
        lines += ["        if a_kfast:",
                  f"            kk = ({lin}) % {BK}", f"            mm = ({lin}) // {BK}",
                  "        else:",
                  f"            mm = ({lin}) % {bm}", f"            kk = ({lin}) // {bm}",
                  "        m = m0 + mm", "        k = t0 + kk",
                  f"        sa[kk, mm] = ab[abase + m * asm + k * ask] if (m < M and k < K) "
                  f"else {c}(0)",
                  "        if b_nfast:",
                  f"            nn = ({lin}) % {bm}", f"            kk = ({lin}) // {bm}",
                  "        else:",
                  f"            kk = ({lin}) % {BK}", f"            nn = ({lin}) // {BK}",
                  "        n = n0 + nn", "        k = t0 + kk",
                  f"        sb[kk, nn] = bb[bbase + k * bsk + n * bsn] if (k < K and n < N) "
                  f"else {c}(0)"]
    lines += ["        cuda.syncthreads()", f"        for j in range({BK}):"]
    lines += [f"            a{i} = sa[j, ty + {T * i}]" for i in range(R)]
    lines += [f"            b{j} = sb[j, tx + {T * j}]" for j in range(R)]
    lines += [f"            c{i}_{j} += a{i} * b{j}" for i in range(R) for j in range(R)]
    lines += ["        cuda.syncthreads()", f"        t0 += {BK}"]
    for i in range(R):
        lines += [f"    m = m0 + ty + {T * i}", "    if m < M:"]
        for j in range(R):
            lines += [f"        n = n0 + tx + {T * j}", "        if n < N:",
                      f"            yb[yo + z * ysb + m * N + n] = c{i}_{j}"]
    return "\n".join(lines) + "\n"


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
    blocked = BLOCKED and dt in ("float32", "float64")
    fn = _kernels.get((dt, blocked))
    if fn is None:
        fn = _kernels[dt, blocked] = load(_blocked_source(dt), f"mmb_{dt}") if blocked else \
            load(_source(dt), f"mm_{dt}")
    lead = bshape[:-1] if bshape else ()
    z = bshape[-1] if bshape else 1
    tile, threads = (T * R, T) if blocked else (TILE, TILE)
    grid = (-(-n // tile), -(-m // tile), z)
    # (loads along k for A when its k stride is 1, along n for B when its n stride is 1)
    flags = (av.strides[-1] == 1 or av.strides[-2] != 1,
             bv.strides[-1] == 1 or bv.strides[-2] != 1) if blocked else ()
    for pos in itertools.product(*[range(s) for s in lead]):
        ao = av.offset + sum(p * s for p, s in zip(pos, sa))
        bo = bv.offset + sum(p * s for p, s in zip(pos, sb))
        yo = y.offset + sum(p * s for p, s in zip(pos, sy))
        launcher(fn, grid, (threads, threads))(
            av.buf, ao, sa[-1] if bshape else 0, av.strides[-2], av.strides[-1],
            bv.buf, bo, sb[-1] if bshape else 0, bv.strides[-2], bv.strides[-1],
            y.buf, yo, sy[-1] if bshape else 0, m, n, k, *flags)
    return y


__all__ = ["TILE", "matmul", "np"]
