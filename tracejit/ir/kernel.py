"""The backend-neutral description of one fused kernel, and the analysis that builds it.

A `Kernel` is what every code generator lowers: an iteration space `shape` (some of whose axes,
`reduce_axes`, are reduced), `loads` (a graph value read through an index map: for each of the
value's dims, the iteration axis it follows, or None where it has size 1 and is broadcast; the
element strides come from the actual array at run time, so views need no copy), a body of
`Step`s in SSA form (op-table ops, `load`, `const`, reductions), and `stores` (graph values
written, with their index maps). A step is "inner" when it varies along a reduce axis (it is
computed inside the reduction loops) and carries `after`: how many reduction passes must finish
before it can be computed. Reductions of pass p read values with `after == p`; pass p + 1 may use
their results broadcast back (softmax: amax is pass 0, the sum of exp(x - max) pass 1, the division
a store after both). `build_kernel` derives all this from a set of graph nodes, or raises `Refuse`
with the reason the nodes cannot form one kernel.
"""
from __future__ import annotations

import numpy as np

from ..ops import REGISTRY
from .graph import Node

REDUCTIONS = ("sum", "prod", "amax", "amin", "all", "any")
VIEWS = ("reshape", "permute", "expand", "copy", "detach")
ROW_LIMIT = 1 << 16          # a row re-read by several passes must stay in cache
_UNK = "?"


class Refuse(Exception):
    """The nodes cannot be one kernel; the message says why."""


class Load:
    __slots__ = ("dims", "value")

    def __init__(self, value: Node, dims: tuple) -> None:
        self.value, self.dims = value, dims


class Step:
    """One body value: op (op-table name, 'load' or 'const'), args (step indices), params."""
    __slots__ = ("after", "args", "dtype", "inner", "node", "op", "params")

    def __init__(self, op, args, params, dtype, inner, after, node=None) -> None:
        self.op, self.args, self.params, self.dtype = op, tuple(args), params, dtype
        self.inner, self.after, self.node = inner, after, node

    def __repr__(self) -> str:
        return f"Step({self.op}, {self.args}, inner={self.inner}, after={self.after})"


class Store:
    """A graph value the kernel writes: its step, index map, and whether it varies along a
    reduce axis (an outer store is written once per kept index, after the last pass)."""
    __slots__ = ("dims", "inner", "node", "step")

    def __init__(self, node: Node, step: int, dims: tuple, inner: bool) -> None:
        self.node, self.step, self.dims, self.inner = node, step, dims, inner


class Kernel:
    def __init__(self, name, shape, reduce_axes, steps, loads, stores, nodes) -> None:
        self.name = name
        self.shape = tuple(shape)
        self.reduce_axes = tuple(reduce_axes)
        self.steps: list[Step] = steps
        self.loads: list[Load] = loads
        self.stores: list[Store] = stores
        self.nodes: list[Node] = nodes          # the graph nodes it replaces
        self.is_reduce = any(s.op in REDUCTIONS for s in steps)
        self.npasses = 1 + max((s.params["pass"] for s in steps if s.op in REDUCTIONS),
                               default=-1)
        self.kept_axes = tuple(a for a in range(len(shape)) if a not in self.reduce_axes)

    @property
    def ops(self) -> list:
        seen = []
        for n in self.nodes:
            if n.op not in VIEWS and n.op not in seen:
                seen.append(n.op)
        return seen

    @property
    def splittable(self) -> bool:
        """One reduction pass and nothing stored after it: the reduce range may be split across
        threads, each writing partial accumulators that a finalize step combines."""
        return self.is_reduce and self.npasses == 1 and not any(
            s.inner and self.steps[s.step].after > 0 for s in self.stores)

    def __str__(self) -> str:
        return f"{self.name} {{{', '.join(self.ops)}}}"

    __repr__ = __str__


# --- index maps -------------------------------------------------------------------------------


def _merge(maps: dict, n: Node, new: list) -> bool:
    """Unify a candidate map for n with what is known; True if something was learned."""
    cur = maps.get(id(n))
    if cur is None:
        maps[id(n)] = list(new)
        return any(e != _UNK for e in new)
    changed = False
    for j, e in enumerate(new):
        if e == _UNK or cur[j] == e:
            continue
        if cur[j] != _UNK:
            raise Refuse(f"%{n.name} would be indexed two different ways in one kernel "
                         f"({cur} vs {new})")
        cur[j] = e
        changed = True
    return changed


def is_dim1_reshape(src: tuple, dst: tuple) -> bool:
    """A reshape that only inserts or removes size-1 dims (a pure relabelling of axes)."""
    return [s for s in src if s != 1] == [s for s in dst if s != 1]


def _identity(shape: tuple) -> list:
    return [None if s == 1 else j for j, s in enumerate(shape)]


def _up(n: Node, k: int, out: list) -> list:
    """The map of n's k-th input, given n's map (consumer -> producer)."""
    src = n.inputs[k].shape
    so = n.shape
    if n.op in REDUCTIONS:
        return _identity(src)
    if n.op == "permute":
        m = [_UNK] * len(src)
        for j, d in enumerate(n.params["dims"]):
            m[d] = out[j]
        return m
    if n.op == "reshape":
        it = iter(e for e, s in zip(out, so) if s != 1)
        return [None if s == 1 else next(it) for s in src]
    off = len(so) - len(src)         # elementwise broadcasting, expand, copy
    return [None if s == 1 else out[j + off] for j, s in enumerate(src)]


def _down(n: Node, ins: list) -> list:
    """n's map from its inputs' maps (None entries where an input is not in the group)."""
    so = n.shape
    if n.op in REDUCTIONS:
        dims, keep = n.params["dims"], n.params["keepdim"]
        src = n.inputs[0].shape
        m = [None if (j in dims or s == 1) else j for j, s in enumerate(src)]
        return m if keep else [e for j, e in enumerate(m) if j not in dims]
    if n.op == "permute":
        return [_UNK] * len(so) if ins[0] is None else [ins[0][d] for d in n.params["dims"]]
    if n.op == "reshape":
        if ins[0] is None:
            return [_UNK] * len(so)
        it = iter(e for e, s in zip(ins[0], n.inputs[0].shape) if s != 1)
        return [None if s == 1 else next(it) for s in so]
    m = [None if s == 1 else _UNK for s in so]
    for u, mu in zip(n.inputs, ins):
        if mu is None:
            continue
        off = len(so) - len(u.shape)
        for k, s in enumerate(u.shape):
            if s != 1 and m[k + off] == _UNK:
                m[k + off] = mu[k]
    return m


def _propagate(members: list, ids: set, maps: dict) -> None:
    changed = True
    while changed:
        changed = False
        for n in members:
            ins = [maps.get(id(u)) if id(u) in ids else None for u in n.inputs]
            changed |= _merge(maps, n, _down(n, ins))
        for n in reversed(members):
            out = maps.get(id(n))
            if out is None or n.op in REDUCTIONS:
                continue
            for k, u in enumerate(n.inputs):
                if id(u) in ids:
                    changed |= _merge(maps, u, _up(n, k, out))


def _index_maps(members: list, ids: set, is_output) -> tuple:
    """Iteration space, reduce axes and a map for every member (see module docstring)."""
    reds = [n for n in members if n.op in REDUCTIONS]
    maps: dict = {}
    if reds:
        shape = reds[0].inputs[0].shape
        axes = tuple(reds[0].params["dims"])
        for r in reds:
            if r.inputs[0].shape != shape or tuple(r.params["dims"]) != axes:
                raise Refuse(f"reductions over different spaces ({r.op} over {r.params['dims']}"
                             f" of {r.inputs[0].shape} vs {axes} of {shape})")
            if id(r.inputs[0]) in ids:
                _merge(maps, r.inputs[0], _identity(shape))
    else:
        # iterate in the order of the largest stored value: its writes are then contiguous
        seed = max(members, key=lambda n: (n.type.numel, bool(is_output(n))))
        shape, axes = seed.shape, ()
        _merge(maps, seed, _identity(shape))
    while True:
        _propagate(members, ids, maps)
        # A dim that only outside operands determine follows the broadcasting convention:
        # right-aligned with the iteration space (x - amax(x, keepdim) with x read from memory).
        todo = next((n for n in members if _UNK in maps[id(n)]), None)
        if todo is None:
            break
        m = maps[id(todo)]
        off = len(shape) - len(todo.shape)
        guess = [e if e != _UNK else (j + off if j + off >= 0 and shape[j + off] == s and
                                      j + off not in m else _UNK)
                 for j, (e, s) in enumerate(zip(m, todo.shape))]
        if _UNK in guess and axes:
            # a value with no tie to the reduce axes may live at the outer level (one per row)
            kept = [a for a in range(len(shape)) if a not in axes]
            off = len(kept) - len(todo.shape)
            guess = [e if e != _UNK else (kept[j + off] if j + off >= 0 and
                                          shape[kept[j + off]] == s and kept[j + off] not in m
                                          else _UNK)
                     for j, (e, s) in enumerate(zip(m, todo.shape))]
        if _UNK in guess:
            raise Refuse(f"%{todo.name} ({todo.op} {todo.shape}) does not fit the iteration "
                         f"space {shape}")
        _merge(maps, todo, guess)
    for n in members:
        m = maps[id(n)]
        if _UNK in m:
            raise Refuse(f"%{n.name} ({n.op} {n.shape}) does not fit the iteration space "
                         f"{shape}")
        for e, s in zip(m, n.shape):
            if e is not None and shape[e] != s:
                raise Refuse(f"%{n.name} does not fit the iteration space {shape}")
    return shape, axes, maps


# --- building the kernel ----------------------------------------------------------------------


def leaf_value(n: Node):
    """The Python scalar of a uniform constant (0-d/size-1 const or full), else None."""
    v = n.value
    if n.op == "const" and v is not None and 0 < v.size <= 1 << 16 and np.array_equal(
            v, np.full_like(v, v.flat[0]), equal_nan=v.dtype.kind == "f"):
        return v.flat[0].item()
    if n.op == "full":
        return n.params["value"]
    return None


def build_kernel(name: str, members: list, is_output, row_limit: int = ROW_LIMIT) -> Kernel:
    """The kernel computing `members` (graph nodes in topological order). `is_output(node)` says
    whether a member's value is needed outside the kernel. Raises Refuse."""
    ids = {id(n) for n in members}
    shape, axes, maps = _index_maps(members, ids, is_output)
    steps: list[Step] = []
    loads: list[Load] = []
    where: dict = {}          # id(member) -> step index
    load_at: dict = {}        # (id(value), dims) -> step index

    def add(step: Step) -> int:
        steps.append(step)
        return len(steps) - 1

    def operand(n: Node, k: int) -> int:
        u = n.inputs[k]
        if id(u) in ids:
            return where[id(u)]
        v = leaf_value(u)
        if v is not None:
            return add(Step("const", (), {"value": v}, u.type.dtype, False, 0, u))
        dims = tuple(_up(n, k, maps[id(n)]))
        key = (id(u), dims)
        if key not in load_at:
            loads.append(Load(u, dims))
            inner = any(d in axes for d in dims)
            load_at[key] = add(Step("load", (), {"load": len(loads) - 1}, u.type.dtype,
                                    inner, 0, u))
        return load_at[key]

    for n in members:
        args = [operand(n, k) for k in range(len(n.inputs))]
        inner = any(d in axes for d in maps[id(n)])
        after = max((steps[a].after for a in args), default=0)
        if n.op in VIEWS:
            where[id(n)] = args[0]
            continue
        params = dict(n.params)
        if n.op == "pow" and id(n.inputs[1]) not in ids and leaf_value(n.inputs[1]) in (2, 3):
            # z ** 3 (gelu) as two multiplies: a general pow is a log and an exp
            x = args[0]
            sq = add(Step("mul", (x, x), {}, n.type.dtype, inner, after, n))
            where[id(n)] = sq if leaf_value(n.inputs[1]) == 2 else \
                add(Step("mul", (sq, x), {}, n.type.dtype, inner, after, n))
            continue
        if n.op in REDUCTIONS:
            params["pass"] = after
            after += 1
        where[id(n)] = add(Step(n.op, args, params, n.type.dtype, inner, after, n))

    stores = []
    nkept = 1
    for a, s in enumerate(shape):
        if a not in axes:
            nkept *= s
    total = nkept
    for a in axes:
        total *= shape[a]
    for n in members:
        if not is_output(n):
            continue
        inner = any(d in axes for d in maps[id(n)])
        want = total if inner or not axes else nkept
        if n.type.numel != want:
            raise Refuse(f"%{n.name} {n.shape} is needed outside the kernel but covers only "
                         f"part of the iteration space {shape}")
        stores.append(Store(n, where[id(n)], tuple(maps[id(n)]), inner))
    if not stores:
        raise Refuse("the kernel would have no outputs")
    k = Kernel(name, shape, axes, steps, loads, stores, list(members))
    late = any(s.inner and steps[s.step].after > 0 for s in stores)
    if (k.npasses > 1 or late) and total // max(nkept, 1) > row_limit:
        raise Refuse(f"a row of {total // max(nkept, 1)} elements would be read by several "
                     f"passes; it does not fit in cache (limit {row_limit})")
    for st in steps:
        if st.op not in ("load", "const") and st.op not in REDUCTIONS \
                and REGISTRY[st.op].kind != "elementwise":
            raise Refuse(f"{st.op} cannot be part of a kernel")
    return k
