"""Row-wise gathers and scatters as one-hot selects, so that they fuse into row kernels.

`x[arange(R)[:, None], idx]` (how cross_entropy picks each row's target log-probability) and the
`index_put` its gradient traces are, per row, "the element in column idx[i]". Written as a select
against the column index and a row reduction, they join the softmax-like row kernel instead of
forcing the row to be written to memory for numpy to gather from; the backward scatter becomes
elementwise. Indices are wrapped like numpy's (negative counts from the end); an out-of-range
index must still raise, so each rewrite adds a boolean check output, and `onehot` returns how
many there are: the caller raises IndexError if any element of one is set.

    before:  %13: f32[16,1] = index %6, %12, %11, key=(('t', 0), ('t', 1))   # %12 = const arange
    after :  %13.c: i64[1,10] = const [0,...,9] ; %13.m: b8[16,10] = eq %13.c, %11 ;
             %13.s: f32[16,10] = where %13.m, %6, 0 ; %13: f32[16,1] = sum %13.s, dims=(1,)
"""
from __future__ import annotations

import numpy as np

from ...ops import REGISTRY
from ...ops import dtypes as D
from ..graph import Graph, Node, TensorType, infer_type

KEY = (("t", 0), ("t", 1))


def _arange_rows(n: Node, rows: int) -> bool:
    """Is n arange(rows) as a column (a const, possibly reshaped: the fold pass leaves large
    ones as reshape of a 1-d const)?"""
    if n.shape != (rows, 1):
        return False
    while n.op == "reshape":
        n = n.inputs[0]
    v = n.value
    return n.op == "const" and v is not None and v.size == rows and \
        np.array_equal(v.reshape(-1), np.arange(rows))


def _match(n: Node) -> bool:
    if n.op == "index":
        x, idx = n.inputs[0], n.inputs[1:]
    elif n.op == "index_put":
        x, idx = n.inputs[0], n.inputs[2:]
        if n.inputs[1].type.dtype is not x.type.dtype:
            return False
    else:
        return False
    if n.params.get("key") != KEY or x.ndim != 2 or len(idx) != 2:
        return False
    rows, cols = idx
    return _arange_rows(rows, x.shape[0]) and cols.shape == (x.shape[0], 1) and \
        cols.type.dtype in (D.int32, D.int64)


def onehot(g: Graph) -> tuple:
    """(graph, number of check outputs appended to its outputs); g itself is not changed."""
    if not any(_match(n) for n in g.nodes):
        return g, 0
    checks: list = []

    def replace(n, ins, out, new):
        if not _match(n):
            return None
        b = _Builder(out, n)
        x, cols = ins[0], ins[-1]
        ncol = x.shape[1]
        checks.append(b.op("logical_or", b.op("ge", cols, b.const(np.asarray(ncol, cols.dtype))),
                           b.op("lt", cols, b.const(np.asarray(-ncol, cols.dtype)))))
        # per element, compare in int32 (half the vector work of int64): once per row, a wrapped
        # int64 index that passed the check above fits
        small = np.int32 if ncol < 2 ** 31 else cols.dtype
        if small != cols.dtype:
            cols = b.op("cast", cols, dtype="int32")
        iota = b.const(np.arange(ncol, dtype=small).reshape(1, ncol))
        big, zero_i = b.const(np.asarray(ncol, small)), b.const(np.asarray(0, small))
        wrapped = b.op("where", b.op("lt", cols, zero_i), b.op("add", cols, big), cols)
        mask = b.op("eq", iota, wrapped)
        if n.op == "index":
            # one element plus zeros: the element's value (a picked -0.0 comes back as +0.0,
            # as float sums start from +0.0 like numpy's; bool sums to int64, cast back)
            zero = b.const(np.zeros((), x.dtype))
            res = b.op("sum", b.op("where", mask, x, zero), dims=(1,), keepdim=True)
            if res.type.dtype is not n.type.dtype:
                res = b.op("cast", res, dtype=n.type.dtype.name)
        else:
            base, val = x, ins[1]
            if n.params["accumulate"]:
                # base + val where the mask is set, base untouched elsewhere (adding 0.0 there
                # would turn a -0.0 into +0.0)
                res = b.op("where", mask, b.op("add", base, val), base)
            else:
                res = b.op("where", mask, val, base)
        res.name = n.name
        return res
    out = _pushed(g).rewrite(replace)
    out.outputs += checks
    return out, len(checks)


def _pushed(g: Graph) -> Graph:
    """g with each row gather from an elementwise expression taken from memory instead."""
    def replace(n, ins, out, new):
        x = n.inputs[0] if n.inputs else None
        if n.op != "index" or x is None or x.op not in REGISTRY or \
                REGISTRY[x.op].kind != "elementwise" or not _match(n) or \
                not _pushable(x, n.shape[0]):
            return None
        res = _push(_Builder(out, n), ins[0], ins[1:], n.shape[0])
        res.name = n.name
        return res
    return g.rewrite(replace)


# ops whose value depends on the sign of a zero operand (1 / -0.0 is -inf): the one-hot pick
# returns a picked -0.0 as +0.0, so a gather is not moved in front of them
_ZERO_SIGN_MATTERS = ("div", "reciprocal", "rsqrt", "pow", "floordiv", "remainder")


def _pushable(x: Node, rows: int, depth: int = 0) -> bool:
    """Can a row gather from x read a tensor that is in memory anyway: x itself (an input, a
    constant, a matmul's result, ...), or x an elementwise expression whose operands are
    per-row values ((rows, 1), uniform) or, recursively, such expressions?"""
    op = REGISTRY.get(x.op)
    if op is None or op.kind != "elementwise":
        return op is None or op.kind in ("matmul", "index")
    if x.op in _ZERO_SIGN_MATTERS:
        return False
    full = [u for u in x.inputs if not _per_row(u, rows)]
    return depth < 16 and bool(full) and \
        all(u.shape == x.shape and _pushable(u, rows, depth + 1) for u in full)


def _per_row(u: Node, rows: int) -> bool:
    return u.shape in ((rows, 1), (1, 1), (1,), ())


def _push(b: "_Builder", x: Node, idx: list, rows: int) -> Node:
    """x[arange, cols] as the same elementwise expression applied to the gathered elements:
    bit for bit the same values, but the gather reads memory that exists anyway instead of
    a row kernel's result (cross_entropy's picked log-probability becomes x[i, t[i]] - max_i
    - log(sum_i): no pass over the row, and no one-hot compare per element)."""
    op = REGISTRY.get(x.op)
    if op is None or op.kind != "elementwise":
        return b.op("index", x, *idx, key=KEY)
    args = [u if _per_row(u, rows) else _push(b, u, idx, rows) for u in x.inputs]
    return b.op(x.op, *args, **x.params)


class _Builder:
    """Appends the nodes of one rewrite, named after the node they replace."""

    def __init__(self, g: Graph, n: Node) -> None:
        self.g, self.n, self.k = g, n, 0

    def _name(self) -> str:
        self.k += 1
        return f"{self.n.name}.{self.k}"

    def const(self, v: np.ndarray) -> Node:
        c = self.g.add("const", [], {}, TensorType(v.shape, D.from_numpy_dtype(v.dtype)),
                       self.n.loc, value=v)
        c.name = self._name()
        return c

    def op(self, name: str, *ins, **params) -> Node:
        c = self.g.add(name, list(ins), params, infer_type(name, ins, params), self.n.loc)
        c.name = self._name()
        return c

