"""Lowering one fused `Kernel` (ir/kernel.py) to numba.cuda source, and launching it.

Operands are the distinct values the kernel loads, passed as (1-D device buffer, element
offset), or as a scalar argument when the value is a host 0-d array (a Python float input, an
eager scalar); stores write fresh buffers. An operand is addressed as `offset + sum(x_a * s_a)`
over the iteration axes it follows. `KernelRunner(k)` (compiled path) bakes sizes and each
load's strides into the source, one variant per stride pattern met (contiguous inputs: one);
`KernelRunner(k, runtime=True)` (eager path) takes sizes and strides as arguments, so one kernel
serves every shape of its rank. Three shapes of code:
  - elementwise: a grid-stride loop over the flat iteration space;
  - reductions, one block per tile of kept points: `BX` kept points x `BY` lanes splitting the
    reduce range, each pass accumulating per lane (4 elements per step, loads first) then
    combining lanes, so later passes and stores see the results; ROW (`BX` = 1, ~16 elements
    per lane, lanes combined by warp shuffles on a GPU) when the innermost axis is reduced
    (softmax, layer_norm rows), COL (`BX` = 32, a shared-memory tree) when it is kept;
  - split reductions (`Kernel.splittable`, few kept points: full sums, column sums): the
    reduce range spreads over `gridDim.y` blocks writing partials; the last block of a tile to
    finish (a ticket from an atomic counter) combines them and runs the epilogue, in the same
    launch (bool partials, which atomics cannot read: a second launch).
Float32 sums and products accumulate in float64 (as the LLVM backend does), rounded once.
"""
from __future__ import annotations

import numpy as np

from ...ir.kernel import REDUCTIONS, Kernel
from ...ops import REGISTRY
from . import array as A
from .launch import Launch
from .loader import load
from .scalar import CudaScalar, E, Emitter, literal


def acc_dtype(op: str, dt: str) -> str:
    if op in ("all", "any"):
        return "bool"
    return "float64" if op in ("sum", "prod") and dt == "float32" else dt


def store_strides(st, strides) -> list:
    """A store's strides per iteration axis it follows (sorted), from its array's strides."""
    out: dict = {}
    for d, ax in enumerate(st.dims):
        if ax is not None:
            out[ax] = out.get(ax, 0) + strides[d]
    return [out[ax] for ax in sorted(out)]


ROW_ELEMS_PER_LANE = 16     # (perf/gpu_check.py times W3 and W4 with 16 and 32)
# a reduction with few kept points is split across blocks when each lane still gets this many
# elements of its share (perf/gpu_check.py `knob` times W3 and W4 with 8 and 64)
SPLIT_MIN_PER_LANE = 8


def config(k: Kernel, nkept: int, nred: int, runtime: bool) -> tuple:
    """(strategy, BX, BY) for a reduction: ROW when the innermost non-trivial axis is reduced."""
    inner = [a for a in range(len(k.shape)) if k.shape[a] != 1 or runtime]
    row = bool(inner and inner[-1] in k.reduce_axes) or (nkept == 1 and not runtime)
    if A.SIM:
        return ("row", 1, 4) if row else ("col", 4, 2)
    if row:
        # ~16 elements per lane, so a lane's fixed work (index setup, the trees) stays small
        # next to its share of the row. On the H200 (perf/RESULTS.md), 4 per lane (8 warps on
        # W4's 1000-wide rows) left the row kernels issue bound (ncu: 77% SM, 14% DRAM), and a
        # W4 step took 0.185 ms with 16 per lane against 0.351 ms with 32
        per_lane = -(-max(nred, 1) // ROW_ELEMS_PER_LANE)
        by = 256 if runtime else min(256, max(32, 1 << max(per_lane - 1, 1).bit_length()))
        return "row", 1, by
    return "col", 32, 8


class Variant:
    """One generated kernel (plus its stage 2 when split) for one operand layout."""

    def __init__(self, source: str, name: str, split: bool) -> None:
        self.source, self.name, self.split = source, name, split
        self.fn = load(source, name)
        self.fn2 = load(source, name + "_2") if f"def {name}_2(" in source else None


class KernelRunner:
    def __init__(self, k: Kernel, runtime: bool = False, flags=()) -> None:
        """flags: the stores that are index checks, written to the device's error flag
        (array.index_error_flag) instead of an array of their own."""
        self.k, self.runtime, self.flags = k, runtime, frozenset(flags)
        self.values: list = []           # operand index -> load value node
        self.op_of: list = []            # load index -> operand index
        for ld in k.loads:
            j = next((i for i, v in enumerate(self.values) if v is ld.value), None)
            if j is None:
                self.values.append(ld.value)
                j = len(self.values) - 1
            self.op_of.append(j)
        self.pairs = [[(d, a) for d, a in enumerate(ld.dims) if a is not None]
                      for ld in k.loads]
        self.axes = [sorted({a for _, a in p}) for p in self.pairs]
        self.variants: dict = {}
        # a split reduction finishes in its own launch (lower.py last_block) unless a partial
        # is a bool, which the atomic read of the partials cannot take
        self.one_launch = all(acc_dtype(k.steps[i].op, k.steps[i].dtype.name) != "bool"
                              for i in self._reductions())
        self._plans: dict = {}
        self.cfg = None
        if k.is_reduce:
            self.cfg = config(k, 0, 0, True) if runtime else config(
                k, _prod([k.shape[a] for a in k.kept_axes]),
                _prod([k.shape[a] for a in k.reduce_axes]), False)

    def __str__(self) -> str:
        return str(self.k)

    # --- per call ---
    def __call__(self, ins: list, outs: list | None = None, shape: tuple | None = None) -> list:
        """ins: one array per operand value (CudaArray or host 0-d); returns the stores, into
        `outs` where given (arrays of the stores' shapes, laid out as the kernel stores)."""
        shape = self.k.shape if shape is None else tuple(shape)
        args, sts = [], []                      # one pass: the arguments and the signature
        for a in ins:
            if type(a) is _CudaArray:
                sts.append(a.strides)
                args += (a.buf, a.offset)
            else:
                sts.append(None)
                args.append(a.item())
        sig = (shape, tuple(sts))
        plan = self._plans.get(sig)
        if plan is None:
            if len(self._plans) > 256:          # eager kernels meet many shapes
                self._plans.clear()
            plan = self._plans[sig] = self._plan(ins, shape)
        launch, launch2, out_specs, scratch, extra, _ = plan
        if outs is None:
            outs = [A.fresh(*spec) for spec in out_specs]
        else:                                   # None: a fresh buffer for that store
            outs = [A.fresh(*spec) if o is None else o for o, spec in zip(outs, out_specs)]
        if launch is None:                      # nothing to compute (a zero-size space)
            return outs
        for o in outs:
            args += (o.buf, o.offset)
        args += scratch
        if self.runtime:
            args += extra[0]
            for st, o in zip(self.k.stores, outs):
                args += store_strides(st, o.strides)
            args += extra[1]
        args.append(extra[2])
        launch.run(args)
        if launch2 is not None:
            launch2.run(args)
        return outs

    def _plan(self, ins: list, shape: tuple) -> tuple:
        """(launch, stage-2 launch, the stores' `A.spec`s, scratch buffers (partials, tickets),
        extra arguments, the scratch buffers' owners)."""
        k = self.k
        out_specs = [A.spec(st.node.shape if shape == k.shape else
                            tuple(shape[a] if a is not None else 1 for a in st.dims),
                            st.node.type.dtype.np) for st in k.stores]
        scal = tuple(type(a) is not A.CudaArray for a in ins)
        strides = []
        for li in range(len(k.loads)):
            a = ins[self.op_of[li]]
            if scal[self.op_of[li]]:
                strides.append(())
                continue
            st = dict.fromkeys(self.axes[li], 0)
            for d, ax in self.pairs[li]:
                st[ax] += a.strides[d]
            strides.append(tuple(st[ax] for ax in self.axes[li]))
        nkept = _prod([shape[a] for a in k.kept_axes])
        nred, total = _prod([shape[a] for a in k.reduce_axes]), _prod(shape)
        if (nkept if k.is_reduce else total) == 0:
            return None, None, out_specs, [], None, []
        split, grid, block = self._launch(nkept, nred, total)
        key = (scal, split) if self.runtime else (scal, split, tuple(strides))
        v = self.variants.get(key)
        if v is None:
            v = self.variants[key] = self._variant(scal, split, None if self.runtime else strides)
        # a split launch's partials (and, finishing in one launch, the tiles' tickets for the
        # last block, zero between launches: the last block resets its own) belong to the plan:
        # launches of one plan follow each other on the one stream, never overlapping
        keep = [A.empty((grid[1] * nkept,), acc_dtype(k.steps[i].op, k.steps[i].dtype.name))
                for i in self._reductions()] if split else []
        if split and self.one_launch:               # one ticket counter per tile
            keep.append(A.from_host(np.zeros(-(-nkept // block[0]), np.int32)))
        extra = ([x for st in strides for x in st], list(shape), grid[1])
        return Launch(v.fn, grid, block), \
            (Launch(v.fn2, (grid[0], 1), block) if split and not self.one_launch else None), \
            out_specs, [a.buf for a in keep], extra, keep

    def _reductions(self) -> list:
        return [i for i, s in enumerate(self.k.steps) if s.op in REDUCTIONS]

    def _launch(self, nkept, nred, total) -> tuple:
        k, sms = self.k, A.sm_count()
        if not k.is_reduce:
            block = 8 if A.SIM else 256
            return False, (max(1, min(-(-total // block), sms * (1 if A.SIM else 32))), 1), \
                (block, 1)
        _, bx, by = self.cfg
        blocks = -(-nkept // bx)
        splits = 1
        target = sms * (1 if A.SIM else 8)
        per_lane = 2 if A.SIM else SPLIT_MIN_PER_LANE
        if k.splittable and blocks < target and nred >= by * per_lane:
            splits = max(1, min(-(-target // blocks), -(-nred // (by * per_lane)), 65535))
        grid_x = max(1, min(blocks, 2 if A.SIM else 1 << 20))
        return splits > 1, (grid_x, splits), (bx, by)

    # --- code generation ---
    def _variant(self, scal: tuple, split: bool, strides) -> Variant:
        from .lower import generate
        name = f"{self.k.name}_{len(self.variants)}"
        src = generate(self, name, scal, split, strides, self.cfg)
        return Variant(src, name, split)


_CudaArray = A.CudaArray


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


def emit_step(em: Emitter, m: CudaScalar, k: Kernel, i: int, vals: dict, sfx: str = "") -> None:
    """v{i}{sfx} = the op-table expression of step i over its arguments' values."""
    st = k.steps[i]
    dt = st.dtype.name
    if st.op == "const":
        vals[i] = E(literal(st.params["value"], dt), dt)
        return
    op = REGISTRY[st.op]
    params = {p: st.params[p] for p in op.static if p in st.params}
    r = op.expr(m, *[vals[a] for a in st.args], **params)
    r = m.cast(r, dt)
    em.line(f"v{i}{sfx} = {r}")
    vals[i] = E(f"v{i}{sfx}", dt)


__all__ = ["KernelRunner", "acc_dtype", "config", "emit_step", "store_strides"]
