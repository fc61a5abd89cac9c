"""Lowering of one fused `Kernel` (tracejit/ir/kernel.py) to an LLVM module.

Signature of every generated function: `void f(i64 start, i64 stop, i64* meta, T0* noalias p0,
..., [i8* scratch])`; the operands are the kernel's loads then its stores, `meta` holds the split
count, the loop shape and per operand one stride (in elements) per loop dim, all chosen at run
time by the backend (so views, broadcasts and merged dims cost nothing here). [start, stop) is
the range the thread pool splits: elements for an elementwise kernel, (output row x split) items
for a reduction. Inside, a flat range is walked as row segments of the innermost dim; that loop
is specialised on each operand's innermost stride class ('1' contiguous, '0' invariant, 's' any,
the `pattern`), so the contiguous case is a plain loop the LLVM vectoriser turns into SIMD code.
Reductions accumulate per block of `BLOCK` elements into partials the vectoriser may reassociate
(`reassoc` on those adds only; no other fast-math flag anywhere), float sums in f64; blocks are
combined in order. A splittable reduction writes its partials to `scratch` and a second function,
`fin`, combines them and runs the epilogue.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.kernel import REDUCTIONS, Kernel
from ...ops import REGISTRY
from .scalar import DTYPES, LLVMScalar

I64, I8, I1 = ir.IntType(64), ir.IntType(8), ir.IntType(1)
BLOCK = 2048
MEM = dict(DTYPES, bool=I8)


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def loop_dims(k: Kernel) -> tuple:
    """(number of outer loop dims, number of reduce loop dims); each at least 1."""
    if not k.is_reduce:
        return max(1, len(k.shape)), 0
    return max(1, len(k.kept_axes)), max(1, len(k.reduce_axes))


class _Acc:
    """How one reduction accumulates: type, identity, combine, final conversion."""

    def __init__(self, op: str, src: str, out: str) -> None:
        self.op, self.src, self.out = op, src, out
        fl = src in ("float32", "float64")
        if op in ("all", "any") or (src == "bool" and op in ("amax", "amin")):
            self.kind = "and" if op in ("all", "amin") else "or"
            self.ty = I1
            self.init = 1 if self.kind == "and" else 0
        elif op in ("sum", "prod"):
            self.kind = "fadd" if op == "sum" and fl else "fmul" if fl else \
                "add" if op == "sum" else "mul"
            self.ty = ir.DoubleType() if op == "sum" and fl else DTYPES[src] if fl else I64
            self.init = 0 if op == "sum" else 1
        else:
            self.kind = ("maximum" if op == "amax" else "minimum") if fl else \
                ("smax" if op == "amax" else "smin")
            self.ty = DTYPES[src]
            w = 0 if fl else DTYPES[src].width
            self.init = (float("-inf") if op == "amax" else float("inf")) if fl else \
                (-(1 << (w - 1)) if op == "amax" else (1 << (w - 1)) - 1)

    def identity(self) -> ir.Constant:
        return ir.Constant(self.ty, self.init if self.ty != I1 else int(self.init))

    def prep(self, m: LLVMScalar, v: ir.Value) -> ir.Value:
        b = m.b
        if self.ty == I1:
            return m.ne(v, 0) if v.type != I1 else v
        if v.type == self.ty:
            return v
        if isinstance(self.ty, ir.DoubleType):
            return b.fpext(v, self.ty)
        return b.zext(v, self.ty) if v.type == I1 else b.sext(v, self.ty)

    def combine(self, m: LLVMScalar, a: ir.Value, v: ir.Value, reassoc: bool) -> ir.Value:
        b, fl = m.b, ("reassoc",) if reassoc else ()
        k = self.kind
        if k == "fadd":
            return b.fadd(a, v, flags=fl)
        if k == "fmul":
            return b.fmul(a, v, flags=fl)
        if k in ("add", "mul", "and", "or"):
            return getattr(b, k + ("_" if k in ("and", "or") else ""))(a, v)
        return m._intr(k, a, v)      # llvm.maximum/minimum propagate NaN, as numpy does

    def final(self, m: LLVMScalar, a: ir.Value) -> ir.Value:
        want = DTYPES[self.out]
        if a.type == want:
            return a
        if isinstance(a.type, ir.DoubleType):
            return m.b.fptrunc(a, want)
        return m.b.zext(a, want) if a.type == I1 else m.b.trunc(a, want)


class _Fn:
    """Builder state of one generated function."""

    def __init__(self, low: "_Lowering", name: str) -> None:
        self.low, k = low, low.k
        args = [I64, I64, I64.as_pointer()] + [MEM[t].as_pointer() for t in low.op_dtypes]
        if low.split:
            args.append(I8.as_pointer())
        self.fn = ir.Function(low.mod, ir.FunctionType(ir.VoidType(), args), name)
        self.fn.attributes.add("nounwind")
        for a in self.fn.args[2:]:
            a.add_attribute("noalias")
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.m = LLVMScalar(self.b)
        self.start, self.stop, meta = self.fn.args[:3]
        self.ptrs = list(self.fn.args[3:3 + len(low.op_dtypes)])
        self.scratch = self.fn.args[-1] if low.split else None
        nd = low.nd
        vals = [self.b.load(self.b.gep(meta, [_c(i)], inbounds=True))
                for i in range(1 + nd + nd * len(self.ptrs))]
        self.nsplit, self.shape = vals[0], vals[1:1 + nd]
        self.strides = [vals[1 + nd + o * nd:1 + nd + (o + 1) * nd] for o in range(len(self.ptrs))]
        self.scopes: list = [{}]
        self.cur_off: dict = {}      # operand -> element pointer inside the current inner loop
        self.base: dict = {}         # operand -> offset of the current outer item
        self.k = k

    # --- loops ---
    def loop(self, lo, hi, inits: list, body) -> list:
        """for (i = lo; i < hi; i = next) with carried values; body(i, carried) -> (next, new)."""
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block("head")
        bb = self.fn.append_basic_block("body")
        out = self.fn.append_basic_block("exit")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        phis = []
        for v in inits:
            p = b.phi(v.type)
            p.add_incoming(v, pre)
            phis.append(p)
        b.cbranch(b.icmp_signed("<", i, hi), bb, out)
        b.position_at_end(bb)
        nxt, new = body(i, phis)
        i.add_incoming(nxt, b.block)
        for p, v in zip(phis, new):
            p.add_incoming(v, b.block)
        b.branch(head)
        b.position_at_end(out)
        return phis

    def offsets(self, idx, dims: list, ops: list, base: dict) -> dict:
        """Offset of flat index idx over loop dims `dims` (outermost first) for each operand."""
        b = self.b
        off = {o: base.get(o, _c(0)) for o in ops}
        r = idx
        for n, d in enumerate(reversed(dims)):
            if n == len(dims) - 1:
                q = r
            else:
                q = b.urem(r, self.shape[d])
                r = b.udiv(r, self.shape[d])
            for o in ops:
                off[o] = b.add(off[o], b.mul(q, self.strides[o][d]))
        return off

    def flat(self, lo, hi, dims: list, ops: list, inits: list, inner) -> list:
        """Walk [lo, hi) of the flat space over `dims` in row segments of the innermost dim;
        inner(rowptr per operand, count, carried) -> new carried."""
        b = self.b
        last = dims[-1]

        def seg(i, accs):
            n_in = self.shape[last]
            if len(dims) == 1:
                row, j = _c(0), i
            else:
                row, j = b.udiv(i, n_in), b.urem(i, n_in)
            a, c = b.sub(hi, i), b.sub(n_in, j)
            cnt = b.select(b.icmp_signed("<", a, c), a, c)
            off = self.offsets(row, dims[:-1], ops, self.base)
            rowptr = {o: self.b.gep(self.ptrs[o], [b.add(off[o], b.mul(j, self.strides[o][last]))],
                                    inbounds=True) for o in ops}
            new = inner(rowptr, cnt, accs, last)
            return b.add(i, cnt), new
        return self.loop(lo, hi, inits, seg)

    def elements(self, rowptr: dict, last: int, lo, hi, inits: list, each) -> list:
        """The innermost loop t in [lo, hi): sets cur_off and calls each(carried) -> new."""
        low, b = self.low, self.b

        def body(t, accs):
            self.scopes.append({})
            for o, p in rowptr.items():
                cls = low.pattern[o]
                if cls == "1":
                    self.cur_off[o] = b.gep(p, [t], inbounds=True)
                elif cls == "0":
                    self.cur_off[o] = p
                else:
                    self.cur_off[o] = b.gep(p, [b.mul(t, self.strides[o][last])], inbounds=True)
            new = each(accs)
            self.scopes.pop()
            return b.add(t, _c(1), flags=("nsw",)), new
        return self.loop(lo, hi, inits, body)

    # --- values ---
    def value(self, i: int) -> ir.Value:
        for s in reversed(self.scopes):
            if i in s:
                return s[i]
        st = self.k.steps[i]
        m, b = self.m, self.b
        if st.op == "load":
            o = st.params["load"]
            ptr = self.cur_off[o] if self.low.inner(i) else \
                b.gep(self.ptrs[o], [self.base.get(o, _c(0))], inbounds=True)
            v = b.load(ptr)
            if st.dtype.name == "bool":
                v = b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        elif st.op == "const":
            v = m.const(st.params["value"], DTYPES[st.dtype.name])
        elif st.op in REDUCTIONS:
            raise AssertionError(f"reduction step {i} used before its pass")
        else:
            args = [self.value(a) for a in st.args]
            v = REGISTRY[st.op].expr(m, *args, **st.params)
            if v.type != DTYPES[st.dtype.name]:
                raise TypeError(f"{st.op}: expression gave {v.type}, expected {st.dtype.name}")
        self.scopes[-1][i] = v
        return v

    def prepare(self, roots: list) -> None:
        """Compute, in the current (outer) scope, the outer values that roots need."""
        for i in sorted(self.low.closure(roots)):
            st = self.k.steps[i]
            if not self.low.inner(i) and st.op not in REDUCTIONS:
                self.value(i)

    def store(self, s: int, v: ir.Value, ptr) -> None:
        if v.type == I1:
            v = self.b.zext(v, I8)
        self.b.store(v, ptr)

    def store_outer(self, stores: list) -> None:
        self.prepare([self.k.stores[s].step for s in stores])
        for s in stores:
            o = self.low.nload + s
            ptr = self.b.gep(self.ptrs[o], [self.base.get(o, _c(0))], inbounds=True)
            self.store(s, self.value(self.k.stores[s].step), ptr)


class _Lowering:
    def __init__(self, k: Kernel, pattern: str) -> None:
        self.k, self.pattern = k, pattern
        self.mod = ir.Module()
        self.nload = len(k.loads)
        self.op_dtypes = [ld.value.type.dtype.name for ld in k.loads] + \
            [s.node.type.dtype.name for s in k.stores]
        nk, nr = loop_dims(k)
        self.nk, self.nr, self.nd = nk, nr, nk + nr
        self.split = k.splittable
        self.reds = [i for i, s in enumerate(k.steps) if s.op in REDUCTIONS]
        self.accs = {i: _Acc(k.steps[i].op, k.steps[k.steps[i].args[0]].dtype.name,
                             k.steps[i].dtype.name) for i in self.reds}

    def inner(self, i: int) -> bool:
        return self.k.steps[i].inner or not self.k.is_reduce

    def closure(self, roots: list) -> set:
        seen: set = set()
        stack = list(roots)
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if self.k.steps[i].op not in REDUCTIONS:
                stack.extend(self.k.steps[i].args)
        return seen

    def operands(self, steps: set, stores: list) -> list:
        """Inner operands touched by these steps and stores."""
        ops = {self.k.steps[i].params["load"] for i in steps
               if self.k.steps[i].op == "load" and self.inner(i)}
        ops.update(self.nload + s for s in stores)
        return sorted(ops)

    def build(self) -> str:
        if not self.k.is_reduce:
            self.elementwise()
        else:
            self.reduction()
        return str(self.mod)

    # --- elementwise: one flat range over every element ---
    def elementwise(self) -> None:
        f = _Fn(self, "main")
        stores = list(range(len(self.k.stores)))
        roots = [s.step for s in self.k.stores]
        ops = self.operands(self.closure(roots), stores)

        def inner(rowptr, cnt, accs, last):
            def each(_):
                for s in stores:
                    f.store(s, f.value(self.k.stores[s].step), f.cur_off[self.nload + s])
                return []
            f.elements(rowptr, last, _c(0), cnt, [], each)
            return []
        f.flat(f.start, f.stop, list(range(self.nd)), ops, [], inner)
        f.b.ret_void()

    # --- reductions ---
    def pass_loop(self, f: _Fn, p: int, lo, hi, stores: list) -> None:
        """One walk over the reduce range: accumulate pass p's reductions, store `stores`."""
        k, b = self.k, f.b
        reds = [i for i in self.reds if k.steps[i].params["pass"] == p]
        roots = [k.steps[i].args[0] for i in reds] + [k.stores[s].step for s in stores]
        need = self.closure(roots)
        f.prepare(roots)
        ops = self.operands(need, stores)
        dims = list(range(self.nk, self.nd))
        acc = [self.accs[i] for i in reds]

        def each(blk):
            for s in stores:
                f.store(s, f.value(k.stores[s].step), f.cur_off[self.nload + s])
            return [a.combine(f.m, x, a.prep(f.m, f.value(k.steps[i].args[0])), True)
                    for a, x, i in zip(acc, blk, reds)]

        def inner(rowptr, cnt, accs, last):
            if not reds:
                f.elements(rowptr, last, _c(0), cnt, [], each)
                return []

            def block(t0, tot):
                end = b.add(t0, _c(BLOCK))
                end = b.select(b.icmp_signed("<", end, cnt), end, cnt)
                part = f.elements(rowptr, last, t0, end, [a.identity() for a in acc], each)
                return end, [a.combine(f.m, x, y, False) for a, x, y in zip(acc, tot, part)]
            return f.loop(_c(0), cnt, accs, block)
        res = f.flat(lo, hi, dims, ops, [a.identity() for a in acc], inner)
        for i, a, r in zip(reds, acc, res):
            f.scopes[-1][i] = r if self.split else a.final(f.m, r)

    def item(self, f: _Fn, o) -> None:
        """Kept-dim offsets of output item o, for every operand."""
        f.base = f.offsets(o, list(range(self.nk)), list(range(len(f.ptrs))), {})

    def reduction(self) -> None:
        k = self.k
        n = self.k.npasses
        inner_st = [s for s, st in enumerate(k.stores) if st.inner]
        outer_st = [s for s, st in enumerate(k.stores) if not st.inner]
        f = _Fn(self, "main")
        b = f.b
        qtot = _c(1)
        for d in range(self.nk, self.nd):
            qtot = b.mul(qtot, f.shape[d])

        def item(w, _):
            f.scopes.append({})
            if self.split:
                o, s = b.udiv(w, f.nsplit), b.urem(w, f.nsplit)
                lo = b.udiv(b.mul(qtot, s), f.nsplit)
                hi = b.udiv(b.mul(qtot, b.add(s, _c(1))), f.nsplit)
            else:
                o, lo, hi = w, _c(0), qtot
            self.item(f, o)
            for p in range(n):
                self.pass_loop(f, p, lo, hi,
                               [s for s in inner_st if k.steps[k.stores[s].step].after == p])
            if self.split:
                for a, i in enumerate(self.reds):
                    slot = b.gep(f.scratch, [b.mul(b.add(b.mul(w, _c(len(self.reds))), _c(a)),
                                                   _c(8))], inbounds=True)
                    b.store(f.scopes[-1][i],
                            b.bitcast(slot, self.accs[i].ty.as_pointer()))
            else:
                late = [s for s in inner_st if k.steps[k.stores[s].step].after == n]
                if late:
                    self.pass_loop(f, n, lo, hi, late)
                f.store_outer(outer_st)
            f.scopes.pop()
            return b.add(w, _c(1)), []
        f.loop(f.start, f.stop, [], item)
        b.ret_void()
        if self.split:
            self.finalize(outer_st)

    def finalize(self, outer_st: list) -> None:
        """fin(start, stop, ...): combine each output's partials, then the epilogue."""
        f = _Fn(self, "fin")
        b = f.b
        nacc = len(self.reds)

        def item(o, _):
            f.scopes.append({})
            self.item(f, o)

            def part(s, accs):
                w = b.add(b.mul(o, f.nsplit), s)
                out = []
                for a, (i, x) in enumerate(zip(self.reds, accs)):
                    slot = b.gep(f.scratch, [b.mul(b.add(b.mul(w, _c(nacc)), _c(a)), _c(8))],
                                 inbounds=True)
                    y = b.load(b.bitcast(slot, self.accs[i].ty.as_pointer()))
                    out.append(self.accs[i].combine(f.m, x, y, False))
                return b.add(s, _c(1)), out
            res = f.loop(_c(0), f.nsplit, [self.accs[i].identity() for i in self.reds], part)
            for i, r in zip(self.reds, res):
                f.scopes[-1][i] = self.accs[i].final(f.m, r)
            f.store_outer(outer_st)
            f.scopes.pop()
            return b.add(o, _c(1)), []
        f.loop(f.start, f.stop, [], item)
        b.ret_void()


def lower(k: Kernel, pattern: str) -> tuple:
    """(LLVM IR text, function names) of kernel k for one innermost-stride pattern."""
    low = _Lowering(k, pattern)
    text = low.build()
    return text, ["main", "fin"] if low.split else ["main"]
