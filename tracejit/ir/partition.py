"""Split a joint forward+backward graph into a forward graph and a backward graph.

Values computed in the forward part and used by the backward part are either saved (outputs of
the forward graph, inputs of the backward graph) or recomputed in the backward graph. Cheap
values (elementwise, movement, constants) are recomputed from what is saved; matmul, reduction
and indexing results and the primal inputs are saved. This keeps the saved bytes at or below
what eager autograd keeps, and lets fusion merge the recomputation into the backward kernels
(W1's backward is one loop that recomputes the forward values).

    joint: %x, %w, %g -> %0 = mul %x, %w ; %1 = tanh %0 ; %2 = sum %1 ; (backward uses %1)
    fwd  : outputs %2                      saved: %x, %w
    bwd  : %0' = mul %x, %w ; %1' = tanh %0' ; ...      (recomputed)
"""
from __future__ import annotations

from ..ops import REGISTRY
from .graph import Graph, Node

_CHEAP = ("elementwise", "movement", "source")


def _ancestors(outputs: list) -> set:
    seen: set = set()
    stack = [o for o in outputs if o is not None]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(n.inputs)
    return seen


def _cheap(n: Node) -> bool:
    if n.op == "index" and all(k[0] in "isn" for k in n.params.get("key", ())):
        return True      # basic indexing (ints, slices, None) is a view: free to redo
    return n.op == "const" or (n.op in REGISTRY and REGISTRY[n.op].kind in _CHEAP)


class Partition:
    """fwd: Graph(primals) -> fwd outputs + saved; bwd: Graph(tangents + saved) -> grads.
    saved[i] is ("input", k) for the k-th primal input or ("output", j) for fwd.outputs[j]."""

    def __init__(self, fwd: Graph, bwd: Graph, saved: list, n_user: int) -> None:
        self.fwd, self.bwd, self.saved, self.n_user = fwd, bwd, saved, n_user

    def saved_bytes(self) -> int:
        return sum(self.fwd.outputs[j].type.nbytes for kind, j in self.saved
                   if kind == "output")


def partition(joint: Graph, primals: list, tangents: list, fwd_outputs: list,
              grad_outputs: list, mutated: set = frozenset()) -> Partition:
    """`mutated`: ids of the primals the function writes in place (written back after the
    forward): values read from them are saved, never recomputed from the changed array."""
    fwd_set = _ancestors(fwd_outputs)
    tangent_ids = {id(t) for t in tangents}
    primal_pos = {id(p): i for i, p in enumerate(primals)}
    # nodes of the forward part (never depend on a tangent)
    fwd_nodes = [n for n in joint.nodes if id(n) in fwd_set]
    needed_bwd = _ancestors(grad_outputs)

    bwd = Graph(joint.name + "_backward")
    new: dict = {}
    for t in tangents:
        new[id(t)] = bwd.add_input(t.type, t.name)
    saved_nodes: list = []

    def save(n: Node) -> Node:
        saved_nodes.append(n)
        inp = bwd.add_input(n.type, f"s{len(saved_nodes) - 1}")
        new[id(n)] = inp
        return inp

    def get(n: Node) -> Node:
        """The backward graph's version of a joint-graph value."""
        if id(n) in new:
            return new[id(n)]
        stack = [(n, False)]
        while stack:  # iterative post-order: recompute cheap forward values from saved ones
            m, done = stack.pop()
            if id(m) in new:
                continue
            if done:
                new[id(m)] = bwd.add(m.op, [new[id(i)] for i in m.inputs], m.params, m.type,
                                     m.loc, value=m.value)
                new[id(m)].meta = dict(m.meta)
                continue
            crossing = id(m) in fwd_set or id(m) in primal_pos
            if crossing and (id(m) in primal_pos or not _cheap(m) or
                             any(id(i) in mutated for i in m.inputs)):
                save(m)
                continue
            stack.append((m, True))
            stack.extend((i, False) for i in m.inputs if id(i) not in new)
        return new[id(n)]

    for n in joint.nodes:
        if id(n) in needed_bwd and id(n) not in fwd_set:
            get(n)
    bwd.outputs = [get(g) if g is not None else None for g in grad_outputs]
    bwd.outputs = [o for o in bwd.outputs if o is not None]

    fwd = Graph(joint.name)
    fmap: dict = {}
    for p in primals:
        fmap[id(p)] = fwd.add_input(p.type, p.name)
    for n in fwd_nodes:
        if id(n) in tangent_ids:
            continue
        m = fwd.add(n.op, [fmap[id(i)] for i in n.inputs], n.params, n.type, n.loc,
                    value=n.value)
        m.meta = dict(n.meta)
        fmap[id(n)] = m
    fwd.outputs = [fmap[id(o)] for o in fwd_outputs]
    saved = []
    for n in saved_nodes:
        if id(n) in primal_pos:
            saved.append(("input", primal_pos[id(n)]))
        else:
            saved.append(("output", len(fwd.outputs)))
            fwd.outputs.append(fmap[id(n)])
    return Partition(fwd, bwd, saved, len(fwd_outputs))
