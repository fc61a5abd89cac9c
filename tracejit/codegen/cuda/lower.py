"""Source generation for `KernelRunner` (kernels.py): one numba.cuda kernel per fused `Kernel`.

`generate` emits, in this order of parameters: per operand `ab{j}, ao{j}` (buffer, offset) or
`ac{j}` (a scalar); per store `y{q}, yo{q}` (for an index check, the error flag: set to 1
where the check holds); when split, one partials buffer `p{i}` per
reduction; in runtime mode the strides `s{load}_{axis}`, `os{store}_{axis}` and sizes `n{axis}`;
last `nsplit`. Iteration indices are `x{axis}`, step values `v{step}`. A reduction kernel walks
tiles of kept points (block-uniform loop, so every thread reaches every `syncthreads`), and for
each reduction pass: per-lane accumulation over its share of the reduce range, then a shared
memory tree over the `BY` lanes; outer values computed after pass p may use its results, inner
stores of values that need them run in one more loop over the range.
"""
from __future__ import annotations

from ...ir.kernel import REDUCTIONS
from .array import contiguous_strides
from .kernels import acc_dtype, emit_step, store_strides
from .scalar import CTOR, FLOATS, CudaScalar, E, Emitter, literal

_COMBINE = {"sum": "add", "prod": "mul", "amax": "maximum", "amin": "minimum",
            "all": "logical_and", "any": "logical_or"}
_NP = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32",
       "int64": "np.int64", "bool": "np.bool_"}


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
        if self.rt:
            for li, axes in enumerate(r.axes):
                if not self.scal[r.op_of[li]]:
                    ps += [f"s{li}_{a}" for a in axes]
            ps += [s for d in self.sstride for s in d.values()]
            ps += [f"n{a}" for a in range(len(k.shape))]
        return ps + ["nsplit"]

    def decompose(self, flat: str, axes: list) -> None:
        em = self.em
        if not axes:
            return
        if len(axes) == 1:
            em.line(f"x{axes[0]} = {flat}")
            return
        q = em.tmp("q")
        em.line(f"{q} = {flat}")
        for a in reversed(axes[1:]):
            em.line(f"x{a} = {q} % {self.size(a)}")
            em.line(f"{q} = {q} // {self.size(a)}")
        em.line(f"x{axes[0]} = {q}")

    @staticmethod
    def terms(strides: dict, axes) -> list:
        out = []
        for a in axes:
            s = strides.get(a)
            if s is None or s == 0:
                continue
            out.append(f"x{a}" if s == 1 else f"x{a} * {s}")
        return out

    def load(self, i: int, vals: dict, base: str, axes) -> None:
        st = self.k.steps[i]
        li = st.params["load"]
        j = self.r.op_of[li]
        dt = st.dtype.name
        if self.scal[j]:
            src = f"{CTOR[dt]}(ac{j})"
        else:
            addr = " + ".join([base] + self.terms(self.lstride[li], axes))
            src = f"{CTOR[dt]}(ab{j}[{addr}])"
        self.em.line(f"v{i} = {src}")
        vals[i] = E(f"v{i}", dt)

    def step(self, i: int, vals: dict, base_of, axes) -> None:
        st = self.k.steps[i]
        if st.op == "load":
            li = st.params["load"]
            self.load(i, vals, base_of(li), axes)
        else:
            emit_step(self.em, self.m, self.k, i, vals)

    def store(self, q: int, vals: dict, axes, guard: str = "") -> None:
        st = self.k.stores[q]
        if q in self.r.flags:           # an index check: raise the error flag where it is set
            guard = f"{guard} and {vals[st.step]}" if guard else str(vals[st.step])
            line = f"y{q}[yo{q}] = 1"
        else:
            addr = " + ".join([f"yo{q}"] + self.terms(self.sstride[q], axes))
            line = f"y{q}[{addr}] = {vals[st.step]}"
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
                    em.line(f"v{i} = {CTOR[dt]}(ab{j}[ao{j} + i])")
                    vals[i] = E(f"v{i}", dt)
                else:
                    self.load(i, vals, f"ao{self.r.op_of[li]}", axes)
            for q, st in enumerate(k.stores):
                if is_flat(self.sstride[q]) and q not in self.r.flags:
                    em.line(f"y{q}[yo{q} + i] = {vals[st.step]}")
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
        for i in reds:
            em.line(f"sh{i} = cuda.shared.array(({by}, {bx}), {_NP[acc[i]]})")
        em.line("tx = i8(cuda.threadIdx.x)")
        em.line("ty = i8(cuda.threadIdx.y)")
        em.line(f"nkept = {self.prod(kept)}")
        em.line(f"nred = {self.prod(red)}")
        em.line("chunk = (nred + nsplit - 1) // nsplit")
        em.line("r_lo = i8(cuda.blockIdx.y) * chunk if nsplit > 1 else i8(0)")
        em.line("r_hi = min(r_lo + chunk, nred)")
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
                        em.line(f"if valid and ty == 0: p{i}[i8(cuda.blockIdx.y) * nkept + kk]"
                                f" = sh{i}[0, tx]")
                    em.line("cuda.syncthreads()")
                    break
                em.line("cuda.syncthreads()")
                self.outer_level(p + 1, vals, kept)
            else:
                late = [q for q, st in enumerate(k.stores) if k.steps[st.step].inner and
                        k.steps[st.step].after == k.npasses]
                if late and not stage2:
                    self.range_loop(k.npasses, [], acc, vals, kept, red)
                for q, st in enumerate(k.stores):
                    if not k.steps[st.step].inner:
                        self.store(q, vals, kept, guard="valid and ty == 0")
            em.line("tile += i8(cuda.gridDim.x)")

    def outer_level(self, level: int, vals: dict, kept) -> None:
        k = self.k
        for i, st in enumerate(k.steps):
            if st.inner or st.op in REDUCTIONS or st.after != level:
                continue
            self.step(i, vals, lambda li: f"ao{self.r.op_of[li]}", kept)

    def range_loop(self, p: int, rs: list, acc: dict, vals: dict, kept, red) -> None:
        k, em, m = self.k, self.em, self.m
        stores = [q for q, st in enumerate(k.stores) if k.steps[st.step].inner and
                  k.steps[st.step].after == p]
        for i in rs:
            em.line(f"a{i} = {literal(identity(k.steps[i].op, k.steps[i].dtype.name), acc[i])}")
        em.line("rr = r_lo + ty")
        em.line("r_end = r_hi if valid else r_lo")
        with em.block("while rr < r_end:"):
            self.decompose("rr", red)
            roots = [k.steps[i].args[0] for i in rs] + [k.stores[q].step for q in stores]
            for i in self.needed(roots):
                self.step(i, vals, lambda li: f"kb{li}", red)
            for i in rs:
                x = m.cast(vals[k.steps[i].args[0]], acc[i])
                c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]), x)
                em.line(f"a{i} = {c}")
            for q in stores:
                self.store(q, vals, kept + red)
            em.line(f"rr += {self.cfg[2]}")

    def partials_loop(self, rs: list, acc: dict) -> None:
        k, em, m = self.k, self.em, self.m
        for i in rs:
            em.line(f"a{i} = {literal(identity(k.steps[i].op, k.steps[i].dtype.name), acc[i])}")
        em.line("rr = ty")
        with em.block("while rr < (nsplit if valid else 0):"):
            for i in rs:
                c = getattr(m, _COMBINE[k.steps[i].op])(E(f"a{i}", acc[i]),
                                                        E(f"p{i}[rr * nkept + kk]", acc[i]))
                em.line(f"a{i} = {c}")
            em.line(f"rr += {self.cfg[2]}")

    def tree(self, rs: list, acc: dict, vals: dict, by: int) -> None:
        k, em, m = self.k, self.em, self.m
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
            dt = k.steps[i].dtype.name
            em.line(f"v{i} = {m.cast(E(f'sh{i}[0, tx]', acc[i]), dt)}")
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
    if split:
        g2 = _Gen(runner, scal, split, strides, cfg)
        g2.reduce(stage2=True)
        src += f"\n\n\ndef {name}_2({', '.join(g.params())}):\n" + g2.em.text()
    return src
