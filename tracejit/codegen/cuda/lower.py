"""Source generation for `KernelRunner` (kernels.py): one numba.cuda kernel per fused `Kernel`.

`generate` emits, in this order of parameters: per operand `ab{j}, ao{j}` (buffer, offset) or
`ac{j}` (a scalar); per store `y{q}, yo{q}` (for an index check, the error flag: set to 1
where the check holds); when split, one partials buffer `p{i}` per reduction (and `cnt`, the
tiles' tickets, when the last block finishes); in runtime mode the strides `s{load}_{axis}`,
`os{store}_{axis}` and sizes `n{axis}`; last `nsplit`. Iteration indices are `x{axis}` (in the
unrolled copies of a range loop `x{axis}_{copy}`), step values `v{step}`. A reduction kernel
walks tiles of kept points (block-uniform loop, so every thread reaches every `syncthreads`),
and for each reduction pass: per-lane accumulation over its share of the reduce range, then the
lanes combined (warp shuffles, or a shared memory tree); outer values computed after pass p may
use its results, inner stores of values that need them run in one more loop over the range.
What the H200 showed these kernels to be bound by, and what answers it here: the issue rate of
per-element index arithmetic (each buffer index is cast to uint64, `u8`, so numba adds no
negative-index wraparound: three 64-bit instructions per access; a constant arange load becomes
the index itself) and per-row fixed work (ROW lanes get ~16 elements each, kernels.py `config`).
"""
from __future__ import annotations

import numpy as np

from ...ir.kernel import REDUCTIONS
from . import array as A
from .array import contiguous_strides
from .kernels import acc_dtype, emit_step, store_strides
from .scalar import CTOR, FLOATS, CudaScalar, E, Emitter, literal

_COMBINE = {"sum": "add", "prod": "mul", "amax": "maximum", "amin": "minimum",
            "all": "logical_and", "any": "logical_or"}
_NP = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32",
       "int64": "np.int64", "bool": "np.bool_"}


UNROLL = {False: 4, True: 2}     # range-loop copies: on a GPU, under the simulator (tested)


def identity(op: str, dt: str):
    if op in ("sum", "prod", "all", "any"):
        return {"sum": 0, "prod": 1, "all": True, "any": False}[op]
    lo = op == "amax"
    if dt == "bool":
        return not lo
    if dt in FLOATS:
        return float("-inf") if lo else float("inf")
    bits = 32 if dt == "int32" else 64
    return -(2 ** (bits - 1)) if lo else 2 ** (bits - 1) - 1


class _Gen:
    def __init__(self, runner, scal, split, strides, cfg) -> None:
        self.r, self.k, self.rt = runner, runner.k, runner.runtime
        self.scal, self.split, self.cfg = scal, split, cfg
        k = self.k
        self.em = Emitter(1)
        self.sfx, self.sfx_axes = "", frozenset()     # see range_loop's unrolled copies
        self.total: dict = {}       # reduction step -> source of the tile's combined value
        self.m = CudaScalar(self.em)
        self.lstride = []
        for li, axes in enumerate(runner.axes):
            if self.rt:
                self.lstride.append({a: f"s{li}_{a}" for a in axes})
            elif scal[runner.op_of[li]]:
                self.lstride.append({})
            else:
                self.lstride.append(dict(zip(axes, strides[li])))
        self.sstride = []
        for q, st in enumerate(k.stores):
            axes = sorted({a for a in st.dims if a is not None})
            if self.rt:
                self.sstride.append({a: f"os{q}_{a}" for a in axes})
            else:
                cs = store_strides(st, contiguous_strides(st.node.shape))
                self.sstride.append(dict(zip(axes, cs)))

    # --- pieces ---
    def size(self, a: int) -> str:
        return f"n{a}" if self.rt else str(self.k.shape[a])

    def prod(self, axes) -> str:
        return " * ".join(self.size(a) for a in axes) if axes else "1"

    def params(self) -> list:
        r, k = self.r, self.k
        ps = []
        for j in range(len(r.values)):
            ps += [f"ac{j}"] if self.scal[j] else [f"ab{j}", f"ao{j}"]
        for q in range(len(k.stores)):
            ps += [f"y{q}", f"yo{q}"]
        if self.split:
            ps += [f"p{i}" for i, s in enumerate(k.steps) if s.op in REDUCTIONS]
            if self.r.one_launch:
                ps.append("cnt")
        if self.rt:
            for li, axes in enumerate(r.axes):
                if not self.scal[r.op_of[li]]:
                    ps += [f"s{li}_{a}" for a in axes]
            ps += [s for d in self.sstride for s in d.values()]
            ps += [f"n{a}" for a in range(len(k.shape))]
        return ps + ["nsplit"]

    def x(self, a: int) -> str:
        """The index variable of axis a (in an unrolled copy of the range loop, that copy's)."""
        return f"x{a}{self.sfx}" if a in self.sfx_axes else f"x{a}"

    def decompose(self, flat: str, axes: list) -> None:
        em = self.em
        if not axes:
            return
        if len(axes) == 1:
            em.line(f"{self.x(axes[0])} = {flat}")
            return
        q = em.tmp("q")
        em.line(f"{q} = {flat}")
        for a in reversed(axes[1:]):
            em.line(f"{self.x(a)} = {q} % {self.size(a)}")
            em.line(f"{q} = {q} // {self.size(a)}")
        em.line(f"{self.x(axes[0])} = {q}")

    def terms(self, strides: dict, axes) -> list:
        out = []
        for a in axes:
            s = strides.get(a)
            if s is None or s == 0:
                continue
            out.append(self.x(a) if s == 1 else f"{self.x(a)} * {s}")
        return out

    def iota_axis(self, li: int):
        """The iteration axis along which load li reads a constant arange (the column index
        of a one-hot select, ir/passes/onehot.py), else None."""
        n = self.r.values[self.r.op_of[li]]
        v = n.value if n.op == "const" else None
        if v is None or v.dtype.kind not in "iu":
            return None
        dims = [d for d, size in enumerate(v.shape) if size != 1]
        if len(dims) != 1 or not np.array_equal(v.reshape(-1), np.arange(v.size)):
            return None
        return next((a for d, a in self.r.pairs[li] if d == dims[0]), None)

    def load(self, i: int, vals: dict, base: str, axes) -> None:
        st = self.k.steps[i]
        li = st.params["load"]
        j = self.r.op_of[li]
        dt = st.dtype.name
        a = self.iota_axis(li)
        if self.scal[j]:
            src = f"{CTOR[dt]}(ac{j})"
        elif a is not None and a in axes:       # the index itself: no load
            src = f"{CTOR[dt]}({self.x(a)})"
        else:
            addr = " + ".join([base] + self.terms(self.lstride[li], axes))
            src = f"{CTOR[dt]}(ab{j}[u8({addr})])"
        self.em.line(f"v{i}{self.sfx} = {src}")
        vals[i] = E(f"v{i}{self.sfx}", dt)

    def step(self, i: int, vals: dict, base_of, axes) -> None:
        st = self.k.steps[i]
        if st.op == "load":
            li = st.params["load"]
            self.load(i, vals, base_of(li), axes)
        else:
            emit_step(self.em, self.m, self.k, i, vals, self.sfx)

    def store(self, q: int, vals: dict, axes, guard: str = "") -> None:
        st = self.k.stores[q]
        if q in self.r.flags:           # an index check: raise the error flag where it is set
            guard = f"{guard} and {vals[st.step]}" if guard else str(vals[st.step])
            line = f"y{q}[u8(yo{q})] = 1"
        else:
            addr = " + ".join([f"yo{q}"] + self.terms(self.sstride[q], axes))
            line = f"y{q}[u8({addr})] = {vals[st.step]}"
        if guard:
            with self.em.block(f"if {guard}:"):
                self.em.line(line)
        else:
            self.em.line(line)

    # --- elementwise ---
    def elementwise(self) -> None:
        k, em = self.k, self.em
        axes = list(range(len(k.shape)))
        em.line("i = i8(cuda.blockIdx.x) * i8(cuda.blockDim.x) + i8(cuda.threadIdx.x)")
        em.line("step = i8(cuda.gridDim.x) * i8(cuda.blockDim.x)")
        flat = [] if self.rt else [a for a in axes if k.shape[a] != 1]
        cs = contiguous_strides(k.shape)
        contiguous = {a: cs[a] for a in flat}

        def is_flat(strides: dict) -> bool:
            return not self.rt and all(strides.get(a, 0) == contiguous[a] for a in flat)
        with em.block(f"while i < {self.prod(axes)}:"):
            if not all(is_flat(s) for s in self.lstride + self.sstride):
                self.decompose("i", axes)
            vals: dict = {}
            for i in range(len(k.steps)):
                if k.steps[i].op != "load":
                    self.step(i, vals, None, axes)
                    continue
                li = k.steps[i].params["load"]
                if is_flat(self.lstride[li]) and not self.scal[self.r.op_of[li]]:
                    j = self.r.op_of[li]
                    dt = k.steps[i].dtype.name
                    em.line(f"v{i} = {CTOR[dt]}(ab{j}[u8(ao{j} + i)])")
                    vals[i] = E(f"v{i}", dt)
                else:
                    self.load(i, vals, f"ao{self.r.op_of[li]}", axes)
            for q, st in enumerate(k.stores):
                if is_flat(self.sstride[q]) and q not in self.r.flags:
                    em.line(f"y{q}[u8(yo{q} + i)] = {vals[st.step]}")
                else:
                    self.store(q, vals, axes)
            em.line("i += step")

    # --- reductions ---
    def needed(self, roots) -> list:
        steps, seen, stack = self.k.steps, set(), list(roots)
        while stack:
            i = stack.pop()
            if i in seen or not steps[i].inner or steps[i].op in REDUCTIONS:
                continue
            seen.add(i)
            stack.extend(steps[i].args)
        return sorted(seen)

    def reduce(self, stage2: bool) -> None:
        k, em = self.k, self.em
        _, bx, by = self.cfg
        kept, red = list(k.kept_axes), list(k.reduce_axes)
        reds = [i for i, s in enumerate(k.steps) if s.op in REDUCTIONS]
        acc = {i: acc_dtype(k.steps[i].op, k.steps[i].dtype.name) for i in reds}
        for p in range(k.npasses):      # a pass's lanes combine one way (`tree`)
            rs = [i for i in reds if k.steps[i].params["pass"] == p]
            warp = self.warp_tree(rs, acc)
            for i in rs:
                em.line(f"sw{i} = cuda.shared.array({by // 32}, {_NP[acc[i]]})" if warp else
                        f"sh{i} = cuda.shared.array(({by}, {bx}), {_NP[acc[i]]})")
        if self.split and self.r.one_launch:
            em.line("lastb = cuda.shared.array(1, np.int32)")
        em.line("tx = i8(cuda.threadIdx.x)")
        em.line("ty = i8(cuda.threadIdx.y)")
        em.line(f"nkept = {self.prod(kept)}")
        em.line(f"nred = {self.prod(red)}")
        if self.split:          # (a 64-bit division: only where the range is split)
            em.line("chunk = (nred + nsplit - 1) // nsplit")
            em.line("r_lo = i8(cuda.blockIdx.y) * chunk")
            em.line("r_hi = min(r_lo + chunk, nred)")
        else:
            em.line("r_lo = i8(0)")
            em.line("r_hi = nred")
        em.line("tile = i8(cuda.blockIdx.x)")
        inner_loads = {s.params["load"] for s in k.steps if s.op == "load" and s.inner}
        with em.block(f"while tile * {bx} < nkept:"):
            em.line(f"kk = tile * {bx} + tx")
            em.line("valid = kk < nkept")
            self.decompose("(kk if valid else i8(0))", kept)
            for li in sorted(inner_loads):
                j = self.r.op_of[li]
                if not self.scal[j]:
                    em.line(f"kb{li} = " + " + ".join([f"ao{j}"] + self.terms(
                        self.lstride[li], kept)))
            vals: dict = {}
            self.outer_level(0, vals, kept)
            passes = [[i for i in reds if k.steps[i].params["pass"] == p]
                      for p in range(k.npasses)]
            for p, rs in enumerate(passes):
                if stage2:
                    self.partials_loop(rs, acc)
                else:
                    self.range_loop(p, rs, acc, vals, kept, red)
                self.tree(rs, acc, vals, by)
                if self.split and not stage2:
                    for i in rs:
                        em.line(f"if valid and ty == 0: p{i}[u8(i8(cuda.blockIdx.y) * nkept + kk)]"
                                f" = {self.total[i]}")
                    if self.r.one_launch:
                        self.last_block(rs, acc, vals, kept, by)
                    else:
                        em.line("cuda.syncthreads()")
                    break
                em.line("cuda.syncthreads()")
                self.outer_level(p + 1, vals, kept)
            else:
                late = [q for q, st in enumerate(k.stores) if st.inner and
                        k.steps[st.step].after == k.npasses]
                if late and not stage2:
                    self.range_loop(k.npasses, [], acc, vals, kept, red)
                for q, st in enumerate(k.stores):
                    if not st.inner:
                        self.store(q, vals, kept, guard="valid and ty == 0")
            em.line("tile += i8(cuda.gridDim.x)")

    def outer_level(self, level: int, vals: dict, kept) -> None:
        k = self.k
        for i, st in enumerate(k.steps):
            if st.inner or st.op in REDUCTIONS or st.after != level:
                continue
            self.step(i, vals, lambda li: f"ao{self.r.op_of[li]}", kept)

    def range_loop(self, p: int, rs: list, acc: dict, vals: dict, kept, red) -> None:
        """Each lane accumulates its share of the reduce range (and stores what pass p stores
        per element), UNROLL elements per iteration, the copies' loads emitted first: a lane
        then has UNROLL loads in flight instead of one. A copy past the range reads the
        range's last element again (a valid address) and is masked out of the accumulators
        and stores."""
        k, em = self.k, self.em
        # every store that varies along the reduce axes, also of an outer value broadcast
        # along them (x.sum(1, keepdim=True).expand(...)): written once per element
        stores = [q for q, st in enumerate(k.stores) if st.inner and
                  k.steps[st.step].after == p]
        for i in rs:
            em.line(f"a{i} = {literal(identity(k.steps[i].op, k.steps[i].dtype.name), acc[i])}")
        em.line("rr = r_lo + ty")
        em.line("r_end = r_hi if valid else r_lo")
        roots = [k.steps[i].args[0] for i in rs] + [k.stores[q].step for q in stores]
        need = self.needed(roots)
        by, n = self.cfg[2], UNROLL[A.SIM]
        with em.block("while rr < r_end:"):
            copies = [dict(vals) for _ in range(n)]
            self.sfx_axes = frozenset(red)
            for u in range(n):
                self.sfx = f"_{u}"
                if u:
                    em.line(f"ok_{u} = rr + {u * by} < r_end")
                self.decompose(f"min(rr + {u * by}, r_end - 1)" if u else "rr", red)
            for loads in (True, False):
                for u in range(n):
                    self.sfx = f"_{u}"
                    for i in need:
                        if (k.steps[i].op == "load") == loads:
                            self.step(i, copies[u], lambda li: f"kb{li}", red)
            for u in range(n):
                self.sfx = f"_{u}"
                if u and rs:
                    with em.block(f"if ok_{u}:"):
                        self.accumulate(rs, acc, copies[u])
                else:
                    self.accumulate(rs, acc, copies[u])
                for q in stores:
                    self.store(q, copies[u], kept + red, guard=f"ok_{u}" if u else "")
            self.sfx, self.sfx_axes = "", frozenset()
            em.line(f"rr += {n * by}")

    def accumulate(self, rs: list, acc: dict, vals: dict) -> None:
        k, m = self.k, self.m
        for i in rs:
            x = m.cast(vals[k.steps[i].args[0]], acc[i])
            c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]), x)
            self.em.line(f"a{i} = {c}")

    def last_block(self, rs: list, acc: dict, vals: dict, kept, by: int) -> None:
        """Stage 2 in the same launch: the last of a tile's `nsplit` blocks to finish (a ticket
        from the tile's counter, after a fence that publishes this block's partials) combines
        the partials and stores, then re-arms the counter for the next launch."""
        k, em = self.k, self.em
        em.line("cuda.threadfence()")
        em.line("cuda.syncthreads()")
        with em.block("if tx == 0 and ty == 0:"):
            em.line("lastb[0] = i4(0)")
            with em.block("if cuda.atomic.add(cnt, u8(tile), i4(1)) == nsplit - 1:"):
                em.line("lastb[0] = i4(1)")
        em.line("cuda.syncthreads()")
        with em.block("if lastb[0] != 0:"):
            self.partials_loop(rs, acc, coherent=True)
            self.tree(rs, acc, vals, by)
            em.line("cuda.syncthreads()")
            self.outer_level(1, vals, kept)
            for q, st in enumerate(k.stores):
                if not st.inner:
                    self.store(q, vals, kept, guard="valid and ty == 0")
            with em.block("if tx == 0 and ty == 0:"):
                em.line("cnt[u8(tile)] = i4(0)")

    def partials_loop(self, rs: list, acc: dict, coherent: bool = False) -> None:
        """Combine the partials of the `nsplit` blocks. `coherent`: read them with an atomic
        add of 0, which returns the value in L2 (other blocks wrote them during this launch;
        a plain load could be served by this SM's non-coherent L1)."""
        k, em, m = self.k, self.em, self.m
        for i in rs:
            em.line(f"a{i} = {literal(identity(k.steps[i].op, k.steps[i].dtype.name), acc[i])}")
        em.line("rr = ty")
        with em.block("while rr < (nsplit if valid else 0):"):
            for i in rs:
                src = f"p{i}[u8(rr * nkept + kk)]"
                if coherent:
                    src = em.tmp("pr")
                    em.line(f"{src} = cuda.atomic.add(p{i}, u8(rr * nkept + kk), "
                            f"{literal(0, acc[i])})")
                c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]), E(src, acc[i]))
                em.line(f"a{i} = {c}")
            em.line(f"rr += {self.cfg[2]}")

    def warp_tree(self, rs: list, acc: dict) -> bool:
        """Whether the lanes of the `rs` reductions combine through warp shuffles: a GPU (the
        simulator has no shuffles), ROW blocks (a warp is 32 consecutive lanes of one tile)
        and no bool accumulator (shuffles move 32/64-bit words)."""
        _, bx, by = self.cfg
        return not A.SIM and bx == 1 and by >= 32 and all(acc[i] != "bool" for i in rs)

    def tree(self, rs: list, acc: dict, vals: dict, by: int) -> None:
        """Combine the lanes' accumulators: v{i} (and `self.total[i]`) = the tile's result."""
        k, em, m = self.k, self.em, self.m
        if self.warp_tree(rs, acc):
            # butterfly within each warp (every lane gets its warp's result), one word per
            # warp through shared memory, then every lane combines the warps' words
            for i in rs:
                for off in (16, 8, 4, 2, 1):
                    t = em.tmp("sf")
                    em.line(f"{t} = cuda.shfl_xor_sync(0xffffffff, a{i}, {off})")
                    c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]), E(t, acc[i]))
                    em.line(f"a{i} = {c}")
                em.line(f"if ty % 32 == 0: sw{i}[ty // 32] = a{i}")
            em.line("cuda.syncthreads()")
            for i in rs:
                em.line(f"a{i} = sw{i}[0]")
                for w in range(1, by // 32):
                    c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]),
                                                            E(f"sw{i}[{w}]", acc[i]))
                    em.line(f"a{i} = {c}")
                self.total[i] = f"a{i}"
        else:
            for i in rs:
                em.line(f"sh{i}[ty, tx] = a{i}")
            em.line("cuda.syncthreads()")
            em.line(f"w = {by // 2}")
            with em.block("while w > 0:"):
                with em.block("if ty < w:"):
                    for i in rs:
                        c = getattr(m, _COMBINE[k.steps[i].op])(E(f"sh{i}[ty, tx]", acc[i]),
                                                                E(f"sh{i}[ty + w, tx]", acc[i]))
                        em.line(f"sh{i}[ty, tx] = {c}")
                em.line("cuda.syncthreads()")
                em.line("w //= 2")
            for i in rs:
                self.total[i] = f"sh{i}[0, tx]"
        for i in rs:
            dt = k.steps[i].dtype.name
            em.line(f"v{i} = {m.cast(E(self.total[i], acc[i]), dt)}")
            vals[i] = E(f"v{i}", dt)


def generate(runner, name: str, scal: tuple, split: bool, strides, cfg) -> str:
    """The source of kernel `name` (and `name_2`, the second stage, when split)."""
    g = _Gen(runner, scal, split, strides, cfg)
    header = f"def {name}({', '.join(g.params())}):"
    if not runner.k.is_reduce:
        g.elementwise()
        return header + "\n" + g.em.text()
    g.reduce(stage2=False)
    src = header + "\n" + g.em.text()
    if split and not runner.one_launch:
        g2 = _Gen(runner, scal, split, strides, cfg)
        g2.reduce(stage2=True)
        src += f"\n\n\ndef {name}_2({', '.join(g.params())}):\n" + g2.em.text()
    return src
