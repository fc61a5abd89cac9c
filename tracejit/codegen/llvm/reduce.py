"""Lowering of reduction kernels: row mode, column mode and the finalize function.

Row mode (the reduce axes include the innermost one: softmax, layer norm, full sums): one item
per output index, or per (output, split) when there are too few outputs to keep every thread
busy. An item walks its reduce range once per pass; inside, partial accumulators per block of
`BLOCK` elements may be reassociated by the vectoriser (`reassoc` on those operations only),
float sums combine blocks in f64 (a float32 block's partials stay float32, so the body keeps
16 lanes), and blocks combine in order. Column mode (reduce over leading
axes, a contiguous kept axis innermost: layer norm's weight gradient): an item is a block of
`JB` outputs along that axis and a share of the reduce range; its accumulators live in the
scratch buffer and the innermost loop over the block vectorises. A splittable kernel stores its
partials in scratch (one region per accumulator, [split][output]); `fin` combines them and runs
the epilogue. amax/amin propagate NaN (llvm.maximum/minimum), integer sums accumulate in int64.
"""
from __future__ import annotations

from llvmlite import ir

from .kernel import I1, I64, _c, column_mode
from .scalar import DTYPES, LLVMScalar

BLOCK = 256          # elements per block of reassociable partials (row mode)
JB = 1024            # outputs per item in column mode (their f64 accumulators stay in L1)
RB = 64              # rows a column-mode float32 partial sums before it is folded into f64


class Acc:
    """How one reduction accumulates: type, identity, combine, final conversion."""

    def __init__(self, op: str, src: str, out: str) -> None:
        self.op, self.src, self.out = op, src, out
        fl = src in ("float32", "float64")
        self.bty = None          # the type of a row-mode block's partials, if not ty
        if op in ("all", "any") or (src == "bool" and op in ("amax", "amin")):
            self.kind = "and" if op in ("all", "amin") else "or"
            self.ty = I1
            self.init = 1 if self.kind == "and" else 0
        elif op in ("sum", "prod"):
            self.kind = ("fadd" if op == "sum" else "fmul") if fl else \
                ("add" if op == "sum" else "mul")
            self.ty = ir.DoubleType() if op == "sum" and fl else DTYPES[src] if fl else I64
            self.init = 0 if op == "sum" else 1
            # float32 sums: each block's partials stay float32 (no more than BLOCK / 16
            # terms per vector lane, then f64 across blocks). An f64 accumulator inside the
            # loop would cap the vectoriser at 8 lanes for the whole body (tanh and all).
            if op == "sum" and src == "float32":
                self.bty = DTYPES[src]
        else:
            self.kind = ("maximum" if op == "amax" else "minimum") if fl else \
                ("smax" if op == "amax" else "smin")
            self.ty = DTYPES[src]
            w = 0 if fl else DTYPES[src].width
            self.init = (float("-inf") if op == "amax" else float("inf")) if fl else \
                (-(1 << (w - 1)) if op == "amax" else (1 << (w - 1)) - 1)

    def identity(self, block: bool = False) -> ir.Constant:
        return ir.Constant(self.bty if block and self.bty else self.ty, self.init)

    def prep(self, m: LLVMScalar, v: ir.Value, block: bool = False) -> ir.Value:
        ty = self.bty if block and self.bty else self.ty
        if ty == I1:
            return m.ne(v, 0) if v.type != I1 else v
        if v.type == ty:
            return v
        if isinstance(ty, ir.DoubleType):
            return m.b.fpext(v, ty)
        return m.b.zext(v, ty) if v.type == I1 else m.b.sext(v, ty)

    def combine(self, m: LLVMScalar, a: ir.Value, v: ir.Value, reassoc: bool) -> ir.Value:
        b, fl, k = m.b, ("reassoc",) if reassoc else (), self.kind
        if k == "fadd":
            return b.fadd(a, v, flags=fl)
        if k == "fmul":
            return b.fmul(a, v, flags=fl)
        if k in ("add", "mul"):
            return getattr(b, k)(a, v)
        if k in ("and", "or"):
            return getattr(b, k + "_")(a, v)
        return m._intr(k, a, v)      # llvm.maximum/minimum propagate NaN, as numpy does

    def final(self, m: LLVMScalar, a: ir.Value) -> ir.Value:
        want = DTYPES[self.out]
        if a.type == want:
            return a
        if isinstance(a.type, ir.DoubleType):
            return m.b.fptrunc(a, want)
        return m.b.zext(a, want) if a.type == I1 else m.b.trunc(a, want)


def lower_reduction(low, Fn) -> None:
    k = low.k
    low.accs = {i: Acc(k.steps[i].op, k.steps[k.steps[i].args[0]].dtype.name,
                       k.steps[i].dtype.name) for i in low.reds}
    inner_st = [s for s, st in enumerate(k.stores) if st.inner]
    outer_st = [s for s, st in enumerate(k.stores) if not st.inner]
    if column_mode(k):
        _column(low, Fn, inner_st)
    else:
        _rows(low, Fn, inner_st, outer_st)
    if low.split:
        _finalize(low, Fn, outer_st)


def _sizes(f, dims) -> ir.Value:
    n = _c(1)
    for d in dims:
        n = f.b.mul(n, f.shape[d])
    return n


def _slot(low, f, s, a: int, o, i: int):
    """Pointer to accumulator a of output o, split s, in scratch: one region of 8 * splits *
    outputs bytes per accumulator, packed [split][output] in the accumulator's type."""
    b = f.b
    nout = _sizes(f, range(low.nk))
    per = b.mul(f.nsplit, nout)
    region = b.gep(f.scratch, [b.mul(per, _c(8 * a))], inbounds=True)
    ptr = b.bitcast(region, low.accs[i].ty.as_pointer())
    return b.gep(ptr, [b.add(b.mul(s, nout), o)], inbounds=True)


def _pass_loop(low, f, p: int, lo, hi, stores: list) -> None:
    """One walk over the reduce range: accumulate pass p's reductions, store `stores`."""
    k, b = low.k, f.b
    reds = [i for i in low.reds if k.steps[i].params["pass"] == p]
    roots = [k.steps[i].args[0] for i in reds] + [k.stores[s].step for s in stores]
    f.prepare(roots)
    ops = f.operands(low.closure(roots), stores)
    acc = [low.accs[i] for i in reds]

    def each(blk):
        for s in stores:
            f.store(s, f.value(k.stores[s].step), f.cur_off[low.nload + s])
        return [a.combine(f.m, x, a.prep(f.m, f.value(k.steps[i].args[0]), True), True)
                for a, x, i in zip(acc, blk, reds)]

    def inner(rowptr, cnt, accs, last):
        if not reds:
            f.elements(rowptr, last, _c(0), cnt, [], each)
            return []

        def block(t0, tot):
            end = b.add(t0, _c(BLOCK))
            end = b.select(b.icmp_signed("<", end, cnt), end, cnt)
            part = f.elements(rowptr, last, t0, end, [a.identity(True) for a in acc], each)
            return end, [a.combine(f.m, x, a.prep(f.m, y), False)
                         for a, x, y in zip(acc, tot, part)]
        return f.loop(_c(0), cnt, accs, block)
    res = f.flat(lo, hi, list(range(low.nk, low.nd)), ops, [a.identity() for a in acc], inner)
    for i, a, r in zip(reds, acc, res):
        f.scopes[-1][i] = r if low.split else a.final(f.m, r)


def _rows(low, Fn, inner_st: list, outer_st: list) -> None:
    k = low.k
    n = k.npasses
    f = Fn(low, "main", False)
    b = f.b
    qtot = _sizes(f, range(low.nk, low.nd))

    def item(w, _):
        f.scopes.append({})
        if low.split:
            o, s = b.udiv(w, f.nsplit), b.urem(w, f.nsplit)
            lo = b.udiv(b.mul(qtot, s), f.nsplit)
            hi = b.udiv(b.mul(qtot, b.add(s, _c(1))), f.nsplit)
        else:
            o, lo, hi = w, _c(0), qtot
        f.base = f.offsets(o, list(range(low.nk)), list(range(len(f.ptrs))), {})
        for p in range(n):
            _pass_loop(low, f, p, lo, hi,
                       [s for s in inner_st if k.steps[k.stores[s].step].after == p])
        if low.split:
            for a, i in enumerate(low.reds):
                b.store(f.scopes[-1][i], _slot(low, f, s, a, o, i))
        else:
            late = [s for s in inner_st if k.steps[k.stores[s].step].after == n]
            if late:
                _pass_loop(low, f, n, lo, hi, late)
            f.store_outer(outer_st)
        f.scopes.pop()
        return b.add(w, _c(1)), []
    f.loop(f.start, f.stop, [], item)
    b.ret_void()


def _column(low, Fn, inner_st: list) -> None:
    """Items (outer kept index, column block, split); accumulators of the block in scratch."""
    k = low.k
    f = Fn(low, "main", True)
    b = f.b
    col = low.nk - 1
    ncol = f.shape[col]
    nblk = b.udiv(b.add(ncol, _c(JB - 1)), _c(JB))
    qtot = _sizes(f, range(low.nk, low.nd))
    roots = [k.steps[i].args[0] for i in low.reds] + [k.stores[s].step for s in inner_st]
    ops = f.operands(low.closure(roots), inner_st)
    acc = [low.accs[i] for i in low.reds]

    # float32 sums add RB rows into float32 partials (16 lanes, half the bytes), then fold them
    # into the f64 accumulators: still far more accurate than numpy's sequential column sum
    blk = all(a.bty is not None for a in acc)
    parts = [b.bitcast(b.alloca(ir.ArrayType(a.bty, JB)), a.bty.as_pointer()) for a in acc] \
        if blk else []

    def item(w, _):
        s, t = b.urem(w, f.nsplit), b.udiv(w, f.nsplit)
        jb, o1 = b.urem(t, nblk), b.udiv(t, nblk)
        j0 = b.mul(jb, _c(JB))
        j1 = b.add(j0, _c(JB))
        j1 = b.select(b.icmp_signed("<", j1, ncol), j1, ncol)
        lo = b.udiv(b.mul(qtot, s), f.nsplit)
        hi = b.udiv(b.mul(qtot, b.add(s, _c(1))), f.nsplit)
        base = f.offsets(o1, list(range(col)), ops, {})
        first = b.add(b.mul(o1, ncol), j0)
        slots = [_slot(low, f, s, a, first, i) for a, i in enumerate(low.reds)]
        cnt = b.sub(j1, j0)

        def init(t, _):
            for a, p in zip(acc, slots):
                b.store(a.identity(), b.gep(p, [t], inbounds=True))
            return b.add(t, _c(1)), []
        f.loop(_c(0), cnt, [], init)
        into = parts or slots

        def row(q, _):
            off = f.offsets(q, list(range(low.nk, low.nd)), ops, base)
            rowptr = {o: b.gep(f.ptrs[o], [b.add(off[o], b.mul(j0, f.strides[o][col]))],
                               inbounds=True) for o in ops}

            def each(_):
                for s_ in inner_st:
                    f.store(s_, f.value(k.stores[s_].step), f.cur_off[low.nload + s_])
                t = f.elem_index
                for a, i, p in zip(acc, low.reds, into):
                    ptr = b.gep(p, [t], inbounds=True)
                    v = a.prep(f.m, f.value(k.steps[i].args[0]), blk)
                    b.store(a.combine(f.m, b.load(ptr), v, False), ptr)
                return []
            f.elements(rowptr, col, _c(0), cnt, [], each)
            return b.add(q, _c(1)), []
        if not blk:
            f.loop(lo, hi, [], row)
            return b.add(w, _c(1)), []

        def chunk(q0, _):
            q1 = b.add(q0, _c(RB))
            q1 = b.select(b.icmp_signed("<", q1, hi), q1, hi)

            def clear(t, _):
                for a, p in zip(acc, parts):
                    b.store(a.identity(True), b.gep(p, [t], inbounds=True))
                return b.add(t, _c(1)), []
            f.loop(_c(0), cnt, [], clear)
            f.loop(q0, q1, [], row)

            def fold(t, _):
                for a, p, q in zip(acc, parts, slots):
                    dst = b.gep(q, [t], inbounds=True)
                    part = a.prep(f.m, b.load(b.gep(p, [t], inbounds=True)))
                    b.store(a.combine(f.m, b.load(dst), part, False), dst)
                return b.add(t, _c(1)), []
            f.loop(_c(0), cnt, [], fold)
            return q1, []
        f.loop(lo, hi, [], chunk)
        return b.add(w, _c(1)), []
    f.loop(f.start, f.stop, [], item)
    b.ret_void()


def _finalize(low, Fn, outer_st: list) -> None:
    """fin(start, stop, ...): per output, combine the splits' partials, then the epilogue."""
    f = Fn(low, "fin", False)
    b = f.b

    def item(o, _):
        f.scopes.append({})
        f.base = f.offsets(o, list(range(low.nk)), list(range(len(f.ptrs))), {})

        def part(s, accs):
            out = []
            for a, (i, x) in enumerate(zip(low.reds, accs)):
                y = b.load(_slot(low, f, s, a, o, i))
                out.append(low.accs[i].combine(f.m, x, y, False))
            return b.add(s, _c(1)), out
        res = f.loop(_c(0), f.nsplit, [low.accs[i].identity() for i in low.reds], part)
        for i, r in zip(low.reds, res):
            f.scopes[-1][i] = low.accs[i].final(f.m, r)
        f.store_outer(outer_st)
        f.scopes.pop()
        return b.add(o, _c(1)), []
    f.loop(f.start, f.stop, [], item)
    b.ret_void()
