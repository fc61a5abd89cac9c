"""Lowering of one fused `Kernel` (tracejit/ir/kernel.py) to an LLVM module.

Signature of every generated function: `void f(i64 start, i64 stop, i64* meta, T0* noalias p0,
..., [i8* scratch])`; the operands are the kernel's loads then its stores, `meta` holds the split
count, the loop shape and per operand one stride (in elements) per loop dim, all chosen at run
time by the backend (so views, broadcasts and merged dims cost nothing here). [start, stop) is
the range the thread pool splits: elements for an elementwise kernel, (output row x split) items
for a reduction. Inside, a flat range is walked as row segments of the innermost dim; that loop
is specialised on each operand's innermost stride class ('1' contiguous, '0' invariant, 's' any,
the `pattern`), so the contiguous case is a plain loop the LLVM vectoriser turns into SIMD code.
The body is the op table's scalar expressions emitted through `LLVMScalar`, without fast-math
flags. This module owns the function skeleton (`_Fn`: arguments, loops, offsets, lazily emitted
values) and elementwise kernels; reduce.py lowers reductions on top of it.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.kernel import REDUCTIONS, Kernel
from ...ops import REGISTRY
from .scalar import DTYPES, LLVMScalar

I64, I8, I1 = ir.IntType(64), ir.IntType(8), ir.IntType(1)
MEM = dict(DTYPES, bool=I8)


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def column_mode(k: Kernel) -> bool:
    """Reduce over leading axes of a contiguous trailing kept axis (a column sum): the innermost
    loop runs along that axis, accumulating a block of outputs at once in memory."""
    n = len(k.shape)
    return k.splittable and bool(k.kept_axes) and k.kept_axes[-1] == n - 1 and \
        k.shape[-1] >= 8 and bool(k.reduce_axes)


def loop_dims(k: Kernel) -> tuple:
    """(number of outer loop dims, number of reduce loop dims); each at least 1."""
    if not k.is_reduce:
        return max(1, len(k.shape)), 0
    return max(1, len(k.kept_axes)), max(1, len(k.reduce_axes))


class _Fn:
    """Builder state of one generated function."""

    def __init__(self, low: _Lowering, name: str, all_inner: bool) -> None:
        self.low, k = low, low.k
        self.all_inner = all_inner   # every value varies in the innermost loop
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
        for o, src in low.alias:
            # an output written over the array one of its loads reads at the same index: store
            # through that load's pointer and strides, so LLVM sees one array (distance 0)
            # rather than two noalias arguments that overlap
            self.ptrs[o], self.strides[o] = self.ptrs[src], self.strides[src]
        self.scopes: list = [{}]
        self.lanes = 0               # > 0 while emitting an explicit vector loop (stream.py)
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
            self.elem_index = t
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
    def inner(self, i: int) -> bool:
        return self.all_inner or self.k.steps[i].inner

    def operands(self, steps: set, stores: list) -> list:
        """Operands read or written inside the innermost loop by these steps and stores."""
        ops = {self.k.steps[i].params["load"] for i in steps
               if self.k.steps[i].op == "load" and self.inner(i)}
        ops.update(self.low.nload + s for s in stores)
        return sorted(ops)

    def value(self, i: int) -> ir.Value:
        for s in reversed(self.scopes):
            if i in s:
                return s[i]
        st = self.k.steps[i]
        m, b = self.m, self.b
        ty = DTYPES[st.dtype.name]
        if self.lanes:
            ty = ir.VectorType(ty, self.lanes)
        if st.op == "load":
            o = st.params["load"]
            ptr = self.cur_off[o] if self.inner(i) else \
                b.gep(self.ptrs[o], [self.base.get(o, _c(0))], inbounds=True)
            if self.lanes and self.low.pattern[o] == "1":      # ptr: a vector pointer
                v = b.load(ptr, align=st.dtype.np.itemsize)
            else:
                v = self.splat(b.load(ptr))
            if st.dtype.name == "bool":
                v = b.icmp_unsigned("!=", v, m.const(0, v))
        elif st.op == "const":
            v = m.const(st.params["value"], ty)
        elif st.op in REDUCTIONS:
            raise AssertionError(f"reduction step {i} used before its pass")
        else:
            args = [self.value(a) for a in st.args]
            v = REGISTRY[st.op].expr(m, *args, **st.params)
            if v.type != ty:
                raise TypeError(f"{st.op}: expression gave {v.type}, expected {ty}")
        self.scopes[-1][i] = v
        return v

    def prepare(self, roots: list) -> None:
        """Compute, in the current (outer) scope, the outer values that roots need."""
        for i in sorted(self.low.closure(roots)):
            st = self.k.steps[i]
            if not self.inner(i) and st.op not in REDUCTIONS:
                self.value(i)

    def splat(self, v: ir.Value) -> ir.Value:
        """v as a vector of `lanes` copies when emitting vector code, else v."""
        if not self.lanes:
            return v
        vec = ir.VectorType(v.type, self.lanes)
        one = self.b.insert_element(ir.Constant(vec, ir.Undefined), v, _c(0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), self.lanes), [0] * self.lanes)
        return self.b.shuffle_vector(one, ir.Constant(vec, ir.Undefined), zeros)

    def store(self, s: int, v: ir.Value, ptr) -> None:
        if v.type == I1:
            v = self.b.zext(v, I8)
        if self.lanes:      # the vector loop of a streaming kernel: ptr is 64-byte aligned
            st = self.b.store(v, ptr, align=64)
            st.set_metadata("nontemporal", self.low.mod.add_metadata([ir.Constant(
                ir.IntType(32), 1)]))
        else:
            self.b.store(v, ptr)

    def store_inner(self, stores: list) -> None:
        """The stores of the current element: every value is computed before the first store,
        so an output written over an input (alias) cannot feed a later store's load."""
        vals = [self.value(self.k.stores[s].step) for s in stores]
        for s, v in zip(stores, vals):
            self.store(s, v, self.cur_off[self.low.nload + s])

    def store_outer(self, stores: list) -> None:
        self.prepare([self.k.stores[s].step for s in stores])
        for s in stores:
            o = self.low.nload + s
            ptr = self.b.gep(self.ptrs[o], [self.base.get(o, _c(0))], inbounds=True)
            self.store(s, self.value(self.k.stores[s].step), ptr)


class _Lowering:
    def __init__(self, k: Kernel, pattern: str, stream: bool = False, alias: tuple = ()) -> None:
        self.k, self.pattern, self.stream, self.alias = k, pattern, stream, alias
        self.mod = ir.Module()
        self.nload = len(k.loads)
        self.op_dtypes = [ld.value.type.dtype.name for ld in k.loads] + \
            [s.node.type.dtype.name for s in k.stores]
        nk, nr = loop_dims(k)
        self.nk, self.nr, self.nd = nk, nr, nk + nr
        self.split = k.splittable
        self.reds = [i for i, s in enumerate(k.steps) if s.op in REDUCTIONS]

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

    def build(self) -> str:
        if self.stream:
            from .stream import lower_stream
            lower_stream(self, _Fn)
        elif not self.k.is_reduce:
            self.elementwise()
        else:
            from .reduce import lower_reduction
            lower_reduction(self, _Fn)
        return str(self.mod)

    # --- elementwise: one flat range over every element ---
    def elementwise(self) -> None:
        f = _Fn(self, "main", True)
        stores = list(range(len(self.k.stores)))
        roots = [s.step for s in self.k.stores]
        ops = f.operands(self.closure(roots), stores)

        def inner(rowptr, cnt, accs, last):
            def each(_):
                f.store_inner(stores)
                return []
            f.elements(rowptr, last, _c(0), cnt, [], each)
            return []
        f.flat(f.start, f.stop, list(range(self.nd)), ops, [], inner)
        f.b.ret_void()

def lower(k: Kernel, pattern: str, stream: bool = False, alias: tuple = ()) -> tuple:
    """(LLVM IR text, function names) of kernel k for one innermost-stride pattern; `stream`:
    the non-temporal-store variant of a flat elementwise kernel (stream.py); `alias`: (store
    operand, load operand) pairs of a kernel writing over an input (same index map)."""
    low = _Lowering(k, pattern, stream, alias)
    text = low.build()
    return text, ["main", "fin"] if low.split else ["main"]
