"""Streaming elementwise kernels: non-temporal vector stores for outputs larger than the cache.

A store that misses the cache first reads the line it is about to overwrite (read for
ownership), so an elementwise kernel writing three 64 MiB gradients moves nine arrays' worth of
memory, not six. Non-temporal stores (`!nontemporal`, x86 vmovntps) skip that read, but LLVM's
loop vectoriser will not widen them and x86 needs them aligned to the vector, so this lowering
writes the vector loop itself: a scalar loop up to the first index where every output is
64-byte aligned, an explicit `<L x T>` loop (L elements of the narrowest output fill 64 bytes),
then a scalar loop for the rest. When the outputs cannot all be aligned at one index (their
addresses differ mod 64), the first loop runs to the end: the function is correct for every
pointer, it is only faster when the outputs share an offset mod 64 (the backend places large
outputs at the same offset within a page as numpy's large arrays). The scalar loops are the
plain elementwise loop, which LLVM vectorises as usual.

The launcher picks this variant only for flat kernels (one loop dim after merging) whose
operands are contiguous or invariant and whose outputs are larger than the last-level cache:
reading them back soon would miss the cache anyway.
"""
from __future__ import annotations

from llvmlite import ir

from .kernel import I64, _c


def lower_stream(low, Fn) -> None:
    f = Fn(low, "main", True)
    b, k, nl = f.b, low.k, low.nload
    stores = list(range(len(k.stores)))
    ops = f.operands(low.closure([s.step for s in k.stores]), stores)
    sizes = [k.stores[s].node.type.dtype.itemsize for s in stores]
    lanes = 64 // min(sizes)
    start, stop = f.start, f.stop

    def addr(o, i):
        return b.ptrtoint(b.gep(f.ptrs[o], [i], inbounds=True), I64)
    # first index from start where output 0 is 64-byte aligned, if its elements ever are
    skew = b.and_(b.sub(_c(0), addr(nl, start)), _c(63))
    i0 = b.add(start, b.udiv(skew, _c(sizes[0])))
    i0 = b.select(b.icmp_signed("<", i0, stop), i0, stop)
    ok = None
    for s in stores:
        aligned = b.icmp_unsigned("==", b.and_(addr(nl + s, i0), _c(63)), _c(0))
        ok = aligned if ok is None else b.and_(ok, aligned)
    i0 = b.select(ok, i0, stop)
    i1 = b.add(i0, b.mul(b.udiv(b.sub(stop, i0), _c(lanes)), _c(lanes)))
    rowptr = {o: f.ptrs[o] for o in ops}

    def each(_):
        f.store_inner(stores)
        return []

    def vector(t, _):
        f.scopes.append({})
        f.lanes = lanes
        for o in ops:
            p = f.ptrs[o]
            if low.pattern[o] == "1":
                ty = ir.VectorType(p.type.pointee, lanes).as_pointer()
                p = b.bitcast(b.gep(p, [t], inbounds=True), ty)
            f.cur_off[o] = p
        each(None)
        f.lanes = 0
        f.scopes.pop()
        return b.add(t, _c(lanes), flags=("nsw",)), []

    f.elements(rowptr, 0, start, i0, [], each)
    f.loop(i0, i1, [], vector)
    f.elements(rowptr, 0, i1, stop, [], each)
    # non-temporal stores are weakly ordered: drain them before another thread may read
    b.fence("seq_cst")
    b.ret_void()
