"""Fusion: group a graph's nodes into kernels (`ir/kernel.py`) and order them with the nodes that
stay outside (matmul, gather/scatter indexing, cat, ...) into a `Schedule` that any backend runs.

Greedy producer-consumer fusion in topological order: each fusible node joins the group(s) of its
producers when the union still forms one valid kernel (one iteration space, consistent index maps,
one set of reduce axes, no cycle through an outside node, rows that fit in cache when they are
read by several passes), else it starts a group of its own; every refusal is logged on
`tracejit.fusion` with its reason. Movement ops of values computed outside a group stay outside
as cheap views (numpy gives them strides, the kernel reads through them); reshape that only adds
or drops size-1 dims, permute, expand and copy of values inside a group become index maps.
Uniform constants (0-d consts, `full`) are inlined into every kernel that reads them.

    before:  %0: f32[N] = mul %x, %w ; %1 = add %0, %b ; %2 = tanh %1 ; %3: f32[] = sum %2
    after :  %3: f32[] = kernel k0 {mul, add, tanh, sum} %x, %w, %b
"""
from __future__ import annotations

import heapq
import logging

from ...ops import REGISTRY
from ..graph import Graph, Node, print_node
from ..kernel import REDUCTIONS, Kernel, Refuse, build_kernel, is_dim1_reshape, leaf_value

logger = logging.getLogger("tracejit.fusion")

# dtypes the kernels compute in; others (uint8, int8, int16, float16) run through numpy
KERNEL_DTYPES = ("float32", "float64", "int32", "int64", "bool")


class Schedule:
    """steps: Kernel or Node (run outside kernels, through the op table's numpy implementation),
    in an order that respects every dependency."""

    def __init__(self, graph: Graph, steps: list) -> None:
        self.graph = graph
        self.steps = steps

    @property
    def kernels(self) -> list:
        return [s for s in self.steps if isinstance(s, Kernel)]

    def describe(self) -> str:
        lines = []
        for s in self.steps:
            if isinstance(s, Kernel):
                lines.append(f"{s} shape={list(s.shape)}" +
                             (f" reduce={list(s.reduce_axes)}" if s.is_reduce else ""))
            elif s.op not in ("const", "reshape", "permute", "expand", "index", "full") or \
                    (s.op == "index" and not _basic_index(s)):
                lines.append(f"external {s.op} %{s.name}")
        return "\n".join(lines)

    def __str__(self) -> str:
        g = self.graph
        ins = ", ".join(f"%{i.name}: {i.type}" for i in g.inputs)
        outs = ", ".join(str(o.type) for o in g.outputs)
        lines = [f"def {g.name}({ins}) -> ({outs}):"]
        for s in self.steps:
            if isinstance(s, Kernel):
                names = ", ".join(f"%{st.node.name}" for st in s.stores)
                types = ", ".join(str(st.node.type) for st in s.stores)
                args = ", ".join(dict.fromkeys(f"%{ld.value.name}" for ld in s.loads))
                lines.append(f"  {names}: {types} = kernel {s} {args}".rstrip())
            else:
                lines.append(print_node(s))
        lines.append("  return " + ", ".join(f"%{o.name}" for o in g.outputs))
        return "\n".join(lines)


def _basic_index(n: Node) -> bool:
    return all(k[0] in "isn" for k in n.params.get("key", ()))


def _dtype_ok(n: Node) -> bool:
    return all(x.type.dtype.name in KERNEL_DTYPES for x in [n] + n.inputs)


def _kind(n: Node) -> str:
    """leaf (inlined constant), fusible, view (fusible as an index map) or external."""
    if leaf_value(n) is not None:
        return "leaf"
    if n.op in ("const", "input"):
        return "external"
    op = REGISTRY[n.op]
    if not _dtype_ok(n):
        return "external"
    if op.kind == "elementwise":
        return "fusible"
    if n.op in REDUCTIONS:
        # amax/amin of an empty tensor must raise as eager does
        if n.op in ("amax", "amin") and n.inputs[0].type.numel == 0:
            return "external"
        return "fusible"
    if n.op in ("permute", "expand", "copy"):
        return "view"
    if n.op == "reshape" and is_dim1_reshape(n.inputs[0].shape, n.shape):
        return "view"
    return "external"


def _why(n: Node) -> str:
    return f"%{n.name} = {n.op}" + (f" ({n.loc})" if n.loc else "")


def fuse(g: Graph, row_limit: int | None = None) -> Schedule:
    """Group `g`'s nodes into kernels; see the module docstring."""
    kw = {} if row_limit is None else {"row_limit": row_limit}
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    users = g.users()
    graph_out = {id(o) for o in g.outputs}
    group_of: dict = {}          # id(node) -> group id
    groups: dict = {}            # group id -> list of nodes (topological order)
    kernels: dict = {}           # group id -> Kernel
    next_id = [0]

    def try_group(members: list):
        ids = {id(m) for m in members}
        if _cycle(members, ids, pos):
            raise Refuse("it would create a cycle through a node outside the kernel")

        def is_output(m: Node) -> bool:
            return id(m) in graph_out or any(id(u) not in ids for u in users[id(m)])
        return build_kernel("k", members, is_output, **kw)

    for n in g.nodes:
        kind = _kind(n)
        if kind in ("leaf", "external"):
            if kind == "external" and n.op not in ("const", "input") and any(
                    id(u) in group_of for u in n.inputs):
                logger.info("not fused: %s runs outside kernels (%s)", _why(n),
                            "dtype " + n.type.dtype.name if not _dtype_ok(n) else
                            "no kernel lowering for this op")
            continue
        cands = list(dict.fromkeys(group_of[id(u)] for u in n.inputs if id(u) in group_of))
        if kind == "view" and not cands:
            continue                     # a numpy view of an outside value
        options = [cands] + ([[c] for c in sorted(cands, key=lambda c: -len(groups[c]))]
                             if len(cands) > 1 else [])
        chosen = None
        reasons = []
        for opt in options:
            members = sorted([m for c in opt for m in groups[c]] + [n],
                             key=lambda m: pos[id(m)])
            try:
                k = try_group(members)
            except Refuse as e:
                reasons.append(str(e))
                continue
            chosen = (opt, members, k)
            break
        if reasons:
            logger.info("fusion of %s into its producers' kernel refused: %s", _why(n),
                        "; ".join(dict.fromkeys(reasons)))
        if chosen is None:
            if kind == "view":
                continue
            try:
                k = try_group([n])
            except Refuse as e:
                logger.info("not fused: %s: %s", _why(n), e)
                continue
            chosen = ([], [n], k)
        opt, members, k = chosen
        gid = next_id[0]
        next_id[0] += 1
        for c in opt:
            del groups[c]
            kernels.pop(c, None)
        groups[gid] = members
        kernels[gid] = k
        for m in members:
            group_of[id(m)] = gid
    return Schedule(g, _order(g, groups, kernels, group_of, pos))


def _cycle(members: list, ids: set, pos: dict) -> bool:
    """Does a path leave the group and come back into it?"""
    lo = min(pos[id(m)] for m in members)
    stack = [u for m in members for u in m.inputs if id(u) not in ids]
    seen: set = set()
    while stack:
        u = stack.pop()
        if id(u) in seen or pos.get(id(u), -1) < lo:
            continue
        seen.add(id(u))
        for w in u.inputs:
            if id(w) in ids:
                return True
            stack.append(w)
    return False


def _order(g: Graph, groups: dict, kernels: dict, group_of: dict, pos: dict) -> list:
    """Kernels and outside nodes in dependency order (a topological sort of the graph with each
    group contracted to one unit, kept close to source order); kernels are named k0, k1, ..."""
    unit = {}
    for n in g.nodes:
        unit[id(n)] = ("g", group_of[id(n)]) if id(n) in group_of else ("n", id(n))
    first: dict = {}
    body: dict = {}
    for n in g.nodes:
        u = unit[id(n)]
        first.setdefault(u, pos[id(n)])
        body.setdefault(u, n)
    needed = {id(o) for o in g.outputs}
    deps: dict = {u: set() for u in first}
    for n in g.nodes:
        for i in n.inputs:
            ui = unit.get(id(i))
            if ui is None or ui == unit[id(n)]:
                continue
            if id(n) not in group_of:
                needed.add(id(i))
            deps[unit[id(n)]].add(ui)
    users: dict = {u: [] for u in first}
    for u, ds in deps.items():
        for d in ds:
            users[d].append(u)
    missing = {u: len(ds) for u, ds in deps.items()}
    ready = [(first[u], u) for u, c in missing.items() if c == 0]
    heapq.heapify(ready)
    steps: list = []
    count = 0
    while ready:
        _, u = heapq.heappop(ready)
        if u[0] == "g":
            k = kernels[u[1]]
            k.name = f"k{count}"
            count += 1
            steps.append(k)
        else:
            n = body[u]
            # uniform constants are inlined into the kernels that read them
            if leaf_value(n) is None or id(n) in needed:
                steps.append(n)
        for w in users[u]:
            missing[w] -= 1
            if missing[w] == 0:
                heapq.heappush(ready, (first[w], w))
    return steps
