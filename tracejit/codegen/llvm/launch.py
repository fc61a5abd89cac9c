"""Running one compiled kernel on numpy arrays: strides, dim merging, specialisation, threads.

`KernelLauncher` owns a `Kernel`'s machine code (one compile per innermost-stride pattern; the
IR text is the cache key, so identical kernels compile once per process and come from the disk
cache in a new one) and, per layout of its input arrays, a `_Plan`: the loop shape and element
strides packed into the `meta` array, with size-1 dims dropped and adjacent dims merged when
every operand allows it (a contiguous 4-D elementwise kernel runs as one flat loop), the split
count of a reduction whose outputs are too few to keep every thread busy (column mode counts
blocks of outputs), and the grain that makes each thread-pool chunk about 50 us of work. Small
kernels run inline on the caller, without the pool.
"""
from __future__ import annotations

import ctypes

import numpy as np

from ...ir.kernel import Kernel
from ...ops import REGISTRY
from ...ops.base import transcendentals
from .. import threadpool
from . import engine
from .kernel import column_mode, loop_dims, lower
from .reduce import JB

_CHUNK_NS = 75_000           # target work per thread-pool chunk; less than 2 chunks runs inline
_fns: dict = {}              # IR text -> {name: ctypes function}


def _last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (Linux sysfs), or 32 MiB when it cannot be read."""
    import glob
    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as fh:
                text = fh.read().strip().upper()
            best = max(best, int(text.rstrip("KMG")) << {"K": 10, "M": 20, "G": 30}.get(
                text[-1:], 0))
        except (OSError, ValueError):
            continue
    return best or 32 << 20


# Outputs at least this large are written with non-temporal stores (stream.py).
STREAM_MIN_BYTES = max(8 << 20, _last_level_cache_bytes())


def _address_reader():
    """An ndarray's data address. `a.ctypes.data` costs microseconds, which matters for small
    calls (W5); numpy's array struct starts with PyObject_HEAD then `char *data`, so read that
    field directly, after checking on a few arrays that it agrees with the slow way."""
    read, off = ctypes.c_void_p.from_address, object.__basicsize__
    probes = [np.ones(3), np.ones((2, 3))[:, 1:], np.zeros(0), np.ones(())]
    if all((read(id(a) + off).value or 0) == a.ctypes.data for a in probes):
        return lambda a: read(id(a) + off).value or 0
    return lambda a: a.ctypes.data


address = _address_reader()


def _compile(text: str, names: list, nptr: int) -> dict:
    fns = _fns.get(text)
    if fns is None:
        addrs = engine.compile_ir(text, names)
        proto = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64,
                                 *([ctypes.c_void_p] * (nptr + 1)))
        fns = _fns[text] = {n: proto(addrs[n]) for n in names}
    return fns


class _Plan:
    __slots__ = ("fin_grain", "fns", "grain", "items", "meta", "meta_ptr", "nsplit", "outputs",
                 "pattern")


class KernelLauncher:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.nk, self.nr = loop_dims(k)
        self.plans: dict = {}
        self.patterns: dict = {}
        self.nacc = sum(1 for s in k.steps if s.params.get("pass") is not None)
        self.inner_ops = [self._inner(ld.dims) for ld in k.loads] + \
            [s.inner or not k.is_reduce for s in k.stores]
        self.dims = [ld.dims for ld in k.loads] + [s.dims for s in k.stores]
        self.order = list(k.kept_axes) + list(k.reduce_axes)
        loads = sum(self.inner_ops)
        heavy = sum(transcendentals(REGISTRY[s.op]) for s in k.steps if s.op in REGISTRY)
        light = len(k.steps) - heavy
        # ns per element on one thread, data in cache (znver4: add+relu 0.15, W1's forward
        # 0.85). A second thread costs ~10 us to start and must pull data produced on the
        # other core, so in-cache work under ~150 us is faster inline (add+relu on 2**19
        # elements: 52 us inline, 95 us on two threads).
        self.cost_elem = 0.05 * loads + 0.5 * heavy + 0.03 * light + 0.05
        self.nptr = len(self.dims) + (1 if k.splittable else 0)
        self.column = column_mode(k)
        self.splittable = k.splittable

    def _inner(self, dims) -> bool:
        return not self.k.is_reduce or any(d in self.k.reduce_axes for d in dims)

    def __str__(self) -> str:
        return str(self.k)

    def functions(self, pattern: str, stream: bool = False, alias: tuple = ()) -> dict:
        key = "".join(f"{o}={src}@" for o, src in alias) + pattern + "n" * stream
        fns = self.patterns.get(key)
        if fns is None:
            text, names = lower(self.k, pattern, stream, alias)
            fns = self.patterns[key] = _compile(text, names, self.nptr)
        return fns

    def _streams(self, arrays: list, dims: list, pat: str) -> bool:
        """Whether to write with non-temporal stores: a flat elementwise kernel over contiguous
        or invariant operands whose outputs (of 4 bytes or more) exceed the cache."""
        if self.k.is_reduce or any(d[0] != 1 for d in dims[:-1]) or set(pat) - {"0", "1"}:
            return False
        outs = arrays[len(self.k.loads):]
        return all(c == "1" for c in pat[len(self.k.loads):]) and \
            min(a.itemsize for a in outs) >= 4 and sum(a.nbytes for a in outs) >= STREAM_MIN_BYTES

    def plan(self, arrays: list, alias: tuple = ()) -> _Plan:
        """The plan for these operand arrays (loads then stores), cached by their strides."""
        key = tuple(a.strides for a in arrays)
        if alias:
            key = (key, alias)
        p = self.plans.get(key)
        if p is None:
            p = self.plans[key] = self._make_plan(arrays, alias)
        return p

    def _make_plan(self, arrays: list, alias: tuple = ()) -> _Plan:
        k = self.k
        shape = k.shape
        strides = []
        for a, dims in zip(arrays, self.dims):
            st = [0] * len(shape)
            for s, d in zip(a.strides, dims):
                if d is not None:
                    st[d] += s // a.itemsize
            strides.append(st)
        nops = len(arrays)

        def merged(axes: list, n: int) -> list:
            out: list = []          # [size, [stride per operand]]
            for ax in axes:
                size, st = shape[ax], [strides[o][ax] for o in range(nops)]
                if size == 1:
                    continue
                if out and all(out[-1][1][o] == st[o] * size for o in range(nops)):
                    out[-1] = [out[-1][0] * size, st]
                else:
                    out.append([size, st])
            return [[1, [0] * nops]] * (n - len(out)) + out
        if k.is_reduce:
            dims = merged(list(k.kept_axes), self.nk) + merged(list(k.reduce_axes), self.nr)
        else:
            dims = merged(list(range(len(shape))), self.nk)
        p = _Plan()
        last = dims[self.nk - 1] if self.column else dims[-1]
        pat = "".join(("1" if last[1][o] == 1 else "0" if last[1][o] == 0 else "s")
                      if self.inner_ops[o] or self.column else "0" for o in range(nops))
        nth = threadpool.num_threads()
        outer = int(np.prod([d[0] for d in dims[:self.nk]]))
        q = int(np.prod([d[0] for d in dims[self.nk:]])) if k.is_reduce else 1
        # column mode: an item is a block of JB outputs along the innermost kept axis
        blocks = outer // last[0] * -(-last[0] // JB) if self.column else outer
        width = min(JB, last[0]) if self.column else 1
        nsplit = 1
        if k.splittable and blocks < 2 * nth and q * width * self.cost_elem > 2 * _CHUNK_NS:
            nsplit = max(1, min(-(-4 * nth // max(blocks, 1)), q // 1024))
        meta = [nsplit] + [d[0] for d in dims] + [d[1][o] for o in range(nops) for d in dims]
        p.meta = np.array(meta, dtype=np.int64)
        p.meta_ptr = p.meta.ctypes.data
        p.pattern = pat
        p.fns = self.functions(pat, self._streams(arrays, dims, pat), alias)
        p.nsplit = nsplit
        p.outputs = outer
        p.items = blocks * nsplit
        per_item = self.cost_elem * (q / nsplit) * (k.npasses + 1 if k.is_reduce else 1) * width
        p.grain = max(1, int(_CHUNK_NS / max(per_item, 1e-3)))
        p.fin_grain = max(1, int(_CHUNK_NS / max(self.nacc * nsplit * 2.0, 1.0)))
        return p

    def run(self, ins: list, outs: list, alias: tuple = ()) -> None:
        """`alias`: (operand, operand) pairs, a store that is given a load's array to write
        over (checked with codegen/inplace.py's overwrite_ok by the caller)."""
        arrays = ins + outs
        p = self.plan(arrays, alias)
        if p.items == 0:
            return
        ptrs = [address(a) for a in arrays]
        if self.splittable:
            scratch = np.empty(p.outputs * p.nsplit * max(self.nacc, 1), dtype=np.int64)
            ptrs.append(address(scratch))
            threadpool.parallel_for(p.fns["main"], p.items, (p.meta_ptr, *ptrs), p.grain)
            threadpool.parallel_for(p.fns["fin"], p.outputs, (p.meta_ptr, *ptrs), p.fin_grain)
        elif p.items < 2 * p.grain:
            p.fns["main"](0, p.items, p.meta_ptr, *ptrs)      # too little work to share
        else:
            threadpool.parallel_for(p.fns["main"], p.items, (p.meta_ptr, *ptrs), p.grain)
