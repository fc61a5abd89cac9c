"""Fusion: group a graph's nodes into kernels (`ir/kernel.py`) and order them with the nodes that
stay outside (matmul, gather/scatter indexing, cat, ...) into a `Schedule` that any backend runs.

Consumer-driven: walking the graph backwards, every value that must exist in memory (a graph
output, an operand of an outside node, a value a kernel could not compute itself) roots a group
that pulls in its producers, latest first, while the group still forms one valid kernel (one
iteration space, consistent index maps, one set of reduce axes, no path out of the group and
back, rows that fit in cache when several passes read them). Cheap elementwise producers may be
pulled into several groups: recomputing them costs less than a round trip through memory (layer
norm's backward recomputes x-hat in its row kernel and in its column-sum kernel); reductions are
never duplicated. Groups that share work or inputs then merge when the union is still valid
(W1's three gradients become one kernel). Each value needed outside is stored by one group.
Every refusal is logged on `tracejit.fusion` with its reason. Reshapes that only add or drop
size-1 dims, permute, expand, copy and detach become index maps; other movement ops stay
outside as numpy views. Uniform constants (0-d consts, `full`) are inlined into every kernel.

    before:  %0: f32[N] = mul %x, %w ; %1 = add %0, %b ; %2 = tanh %1 ; %3: f32[] = sum %2
    after :  %3: f32[] = kernel k0 {mul, add, tanh, sum} %x, %w, %b
"""
from __future__ import annotations

import heapq
import logging

from ...ops import REGISTRY
from ..graph import Graph, Node, print_node
from ..kernel import REDUCTIONS, VIEWS, Kernel, Refuse, build_kernel, is_dim1_reshape, leaf_value
from .matmul_sum import merge_matmul_sums
from .split_reduce import split_reductions

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
    if n.op in VIEWS and n.op != "reshape":
        return "view"
    if n.op == "reshape" and is_dim1_reshape(n.inputs[0].shape, n.shape):
        return "view"
    return "external"


def _why(n: Node) -> str:
    return f"%{n.name} = {n.op}" + (f" ({n.loc})" if n.loc else "")


def fuse(g: Graph, row_limit: int | None = None) -> Schedule:
    """Group `g`'s nodes into kernels; see the module docstring. The schedule runs
    `split_reductions(merge_matmul_sums(g))` (same inputs and outputs as g): run
    `schedule.graph`."""
    g = split_reductions(merge_matmul_sums(g))
    f = _Fuser(g, row_limit)
    groups = f.merge(f.pull_all())
    owner = f.assign_stores(groups)
    steps = _order(g, groups, owner, f)
    for how, fallback in (("without recomputation", f.greedy), ("one node a kernel", f.singles)):
        if steps is not None:
            break
        logger.info("fused kernels of %s would depend on each other in a cycle; fusing %s "
                    "instead", g.name, how)
        groups = fallback()
        owner = {}
        for gi, (ms, _) in enumerate(groups):
            for m in ms:
                owner[id(m)] = gi
        f.assign_stores(groups, owner)
        steps = _order(g, groups, owner, f)
    return Schedule(g, steps)


class _Fuser:
    def __init__(self, g: Graph, row_limit) -> None:
        self.g = g
        self.kw = {} if row_limit is None else {"row_limit": row_limit}
        self.pos = {id(n): i for i, n in enumerate(g.nodes)}
        self.users = g.users()
        self.graph_out = {id(o) for o in g.outputs}
        self.kind = {id(n): _kind(n) for n in g.nodes}
        # a view read only by outside nodes (w.T feeding a matmul) stays a numpy view: as a
        # kernel it would be a copy that BLAS does not need
        for n in reversed(g.nodes):
            if self.kind[id(n)] == "view" and id(n) not in self.graph_out and \
                    self.users[id(n)] and all(self.kind.get(id(u)) == "external"
                                              for u in self.users[id(n)]):
                self.kind[id(n)] = "external"
        live: set = set(self.graph_out)
        for n in reversed(g.nodes):
            if id(n) in live:
                live.update(id(u) for u in n.inputs)
        self.live = live

    def pullable(self, n: Node) -> bool:
        return self.kind.get(id(n)) in ("fusible", "view")

    def check(self, members: list, stored: set) -> Kernel:
        ids = {id(m) for m in members}
        if _cycle(members, ids, self.pos):
            raise Refuse("it would create a cycle through a node outside the kernel")
        return build_kernel("k", members, lambda m: id(m) in stored, **self.kw)

    def pull(self, root: Node, taken: set) -> list:
        """root and as many of its producers as one kernel can compute (latest first)."""
        members, mset = [root], {id(root)}
        heap, queued = [], set()

        def push(n):
            for u in n.inputs:
                if id(u) not in queued and self.pullable(u):
                    queued.add(id(u))
                    heapq.heappush(heap, (-self.pos[id(u)], id(u), u))
        push(root)
        while heap:
            p = heapq.heappop(heap)[2]
            if p.op in REDUCTIONS and id(p) in taken:
                continue                 # computed by another kernel: read it
            cand = sorted(members + [p], key=lambda m: self.pos[id(m)])
            try:
                self.check(cand, {id(root)})
            except Refuse as e:
                logger.info("%s not fused into the kernel computing %s: %s", _why(p),
                            _why(root), e)
                continue
            members, mset = cand, mset | {id(p)}
            push(p)
        return members

    def pull_all(self) -> list:
        groups, taken = [], set()
        for n in reversed(self.g.nodes):
            if not self.pullable(n) or id(n) in taken or id(n) not in self.live:
                continue
            ms = self.pull(n, taken)
            taken.update(id(m) for m in ms)
            groups.append((ms, {id(n)}))
        return groups[::-1]

    def merge(self, groups: list) -> list:
        """Merge groups that share members or inputs, or feed each other, when still valid."""
        i = 0
        while i < len(groups):
            j = i + 1
            while j < len(groups):
                a, b = groups[i], groups[j]
                if self.related(a[0], b[0]):
                    ms = sorted({id(m): m for m in a[0] + b[0]}.values(),
                                key=lambda m: self.pos[id(m)])
                    try:
                        self.check(ms, a[1] | b[1])
                    except Refuse as e:
                        logger.debug("kernels not merged: %s", e)
                    else:
                        groups[i] = (ms, a[1] | b[1])
                        del groups[j]
                        j = i + 1
                        continue
                j += 1
            i += 1
        return groups

    def related(self, a: list, b: list) -> bool:
        ia, ib = {id(m) for m in a}, {id(m) for m in b}
        if ia & ib:
            return True
        ins_a = {id(u) for m in a for u in m.inputs} - ia
        ins_b = {id(u) for m in b for u in m.inputs} - ib
        return bool(ins_a & ins_b or ins_a & ib or ins_b & ia)

    def assign_stores(self, groups: list, owner: dict | None = None) -> dict:
        """Which group stores each value needed in memory (id -> group index); a value no
        group containing it can store gets a group of its own."""
        owner = {} if owner is None else owner
        done: set = set()
        changed = True
        while changed:
            changed = False
            contains: dict = {}
            for gi, (ms, _) in enumerate(groups):
                for m in ms:
                    contains.setdefault(id(m), []).append(gi)
            sets = [{id(m) for m in ms} for ms, _ in groups]
            for n in self.g.nodes:
                if id(n) in done or id(n) not in contains or not self.needed(n, contains, sets):
                    continue
                done.add(id(n))
                if id(n) in owner:
                    groups[owner[id(n)]][1].add(id(n))
                    continue
                for gi in contains[id(n)]:
                    try:
                        self.check(groups[gi][0], groups[gi][1] | {id(n)})
                    except Refuse:
                        continue
                    groups[gi][1].add(id(n))
                    owner[id(n)] = gi
                    break
                else:
                    logger.info("%s is needed in memory but no kernel computing it can store it "
                                "(shape %s); it gets a kernel of its own", _why(n), n.shape)
                    groups.append((self.pull(n, set(owner)), {id(n)}))
                    owner[id(n)] = len(groups) - 1
                    changed = True
                    break
        return owner

    def needed(self, n: Node, contains: dict, sets: list) -> bool:
        """Must n exist in memory: a graph output, or read by an outside node or by a kernel
        that does not compute it itself?"""
        if id(n) in self.graph_out:
            return True
        for u in self.users[id(n)]:
            if id(u) not in self.live:
                continue
            gs = contains.get(id(u))
            if not gs or any(id(n) not in sets[h] for h in gs):
                return True
        return False

    def singles(self) -> list:
        """Last fallback: one kernel per fusible node, which no cycle can defeat."""
        out = []
        for n in self.g.nodes:
            if self.pullable(n) and id(n) in self.live:
                try:
                    self.check([n], {id(n)})
                except Refuse:
                    continue
                out.append(([n], set()))
        return out

    def greedy(self) -> list:
        """Fallback: each fusible node joins its producers' group when valid (no duplication)."""
        group_of: dict = {}
        groups: dict = {}
        for n in self.g.nodes:
            if not self.pullable(n) or id(n) not in self.live:
                continue
            cands = list(dict.fromkeys(group_of[id(u)] for u in n.inputs if id(u) in group_of))
            chosen = None
            for opt in [cands] + [[c] for c in cands] * (len(cands) > 1) + [[]]:
                ms = sorted([m for c in opt for m in groups[c]] + [n],
                            key=lambda m: self.pos[id(m)])
                ids = {id(m) for m in ms}
                try:
                    self.check(ms, {id(m) for m in ms if id(m) in self.graph_out or any(
                        id(u) not in ids for u in self.users[id(m)])})
                except Refuse:
                    continue
                chosen = (opt, ms)
                break
            if chosen is None:
                continue
            for c in chosen[0]:
                del groups[c]
            gid = self.pos[id(n)]
            groups[gid] = chosen[1]
            for m in chosen[1]:
                group_of[id(m)] = gid
        return [(ms, set()) for _, ms in sorted(groups.items())]


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


def _order(g: Graph, groups: list, owner: dict, f: _Fuser) -> list | None:
    """Kernels and outside nodes in dependency order (a topological sort with each group one
    unit, kept close to source order), or None if the groups depend on each other in a cycle.
    Kernels are built here and named k0, k1, ... in that order."""
    first: dict = {}
    deps: dict = {}
    inputs = {id(n) for n in g.inputs}

    def source(v: Node):
        """The unit that produces v, or None (graph input, or a constant inlined by kernels)."""
        if id(v) in inputs:
            return None
        if f.pullable(v):
            return ("g", owner[id(v)])
        return ("n", id(v))
    nodes = {}
    for gi, (ms, _) in enumerate(groups):
        u = ("g", gi)
        first[u] = min(f.pos[id(m)] for m in ms)
        ids = {id(m) for m in ms}
        deps[u] = {source(v) for m in ms for v in m.inputs
                   if id(v) not in ids and f.kind.get(id(v)) != "leaf"} - {None}
    needed = {id(o) for o in g.outputs}
    for n in g.nodes:
        if f.pullable(n) or id(n) not in f.live:
            continue
        u = ("n", id(n))
        nodes[u] = n
        first[u] = f.pos[id(n)]
        deps[u] = {source(v) for v in n.inputs} - {None}
        needed.update(id(v) for v in n.inputs)
    for u in [u for u in deps if u[0] == "n" and f.kind[u[1]] == "leaf" and u[1] not in needed]:
        del deps[u]      # uniform constants only kernels read: inlined there
    for u, ds in deps.items():
        ds.discard(u)
    users: dict = {u: [] for u in deps}
    for u, ds in deps.items():
        for d in ds:
            users[d].append(u)
    missing = {u: len(ds) for u, ds in deps.items()}
    ready = [(first[u], u) for u, c in missing.items() if c == 0]
    heapq.heapify(ready)
    steps: list = []
    while ready:
        _, u = heapq.heappop(ready)
        if u[0] == "g":
            ms, stored = groups[u[1]]
            k = build_kernel(f"k{sum(isinstance(s, Kernel) for s in steps)}", ms,
                             lambda m, stored=stored: id(m) in stored, **f.kw)
            steps.append(k)
        else:
            steps.append(nodes[u])
        for w in users[u]:
            missing[w] -= 1
            if missing[w] == 0:
                heapq.heappush(ready, (first[w], w))
    return steps if len(steps) == len(deps) else None
