"""Sums of matmuls merged into one matmul of concatenated operands.

A weight used at every step of an unrolled RNN gets its gradient as sum_t h_t^T dz_t: T small
matmuls (64x256x256 in W7, where BLAS runs well below its peak), T intermediate results and an
add over all of them. One matmul over the concatenations, sum_t L_t R_t = cat(L_t, dim=1) @
cat(R_t, dim=0) (256x2048x256 there), computes the same sum in one well-shaped BLAS call; the
concatenations copy the operands once, which costs less than writing and re-reading the T
results (W7's step: 30.5 -> 25.1 ms). When every L_t is a transposed view A_t^T, the left
operand is cat(A_t, dim=0)^T: contiguous copies, and BLAS reads the transpose for free. Exact up
to the order of the float sum (BLAS fixes none either). Only add trees of at least MIN_TERMS
2-D matmuls of one dtype whose intermediate sums nobody else reads.

    before:  %17 = matmul %16, %8 ; %32 = matmul %31, %23 ; %33 = add %17, %32  (%16 = permute %15)
    after :  %33.1 = cat %15, %30, dim=0 ; %33.2 = permute %33.1, dims=(1, 0) ;
             %33.3 = cat %8, %23, dim=0 ; %33 = matmul %33.2, %33.3
"""
from __future__ import annotations

from ..graph import Graph, Node, infer_type
from .dce import dce

MIN_TERMS = 4


def _terms(root: Node, users: dict, outs: set) -> list | None:
    """The matmul leaves of the add tree at root, or None if it is not such a tree."""
    leaves, stack = [], list(root.inputs)
    while stack:
        n = stack.pop()
        if len(users[id(n)]) != 1 or id(n) in outs:
            return None
        if n.op == "add" and n.shape == root.shape and all(u.shape == n.shape for u in n.inputs):
            stack.extend(n.inputs)
        elif n.op == "matmul" and n.ndim == 2 and all(u.ndim == 2 for u in n.inputs) and \
                all(u.type.dtype is n.type.dtype for u in n.inputs):
            leaves.append(n)
        else:
            return None
    return leaves


def _is_add(n: Node) -> bool:
    return n.op == "add" and n.ndim == 2 and all(u.shape == n.shape for u in n.inputs)


def merge_matmul_sums(g: Graph) -> Graph:
    """g with such sums merged; g itself when there is none (g is never changed)."""
    users, outs = g.users(), {id(o) for o in g.outputs}
    plan = {}
    for n in g.nodes:
        us = users[id(n)]
        if not _is_add(n) or (len(us) == 1 and _is_add(us[0]) and id(n) not in outs):
            continue              # not an add, or inside a larger tree: merged with its root
        leaves = _terms(n, users, outs)
        if leaves and len(leaves) >= MIN_TERMS:
            plan[id(n)] = leaves
    if not plan:
        return g
    return dce(g.rewrite(lambda n, ins, out, new: _merged(out, n, plan[id(n)], new)
                         if id(n) in plan else None))


def _merged(out: Graph, root: Node, leaves: list, new: dict) -> Node:
    """root's sum as one matmul; `new` maps the old graph's nodes to `out`'s."""
    k = [0]

    def add(op, ins, **params):
        k[0] += 1
        c = Node(op, ins, params, infer_type(op, ins, params), root.loc, f"{root.name}.{k[0]}")
        out.nodes.append(c)
        return c
    lefts = [m.inputs[0] for m in leaves]
    if all(x.op == "permute" and x.params["dims"] == (1, 0) for x in lefts):
        left = add("permute", [add("cat", [new[id(x.inputs[0])] for x in lefts], dim=0)],
                   dims=(1, 0))
    else:
        left = add("cat", [new[id(x)] for x in lefts], dim=1)
    right = add("cat", [new[id(m.inputs[1])] for m in leaves], dim=0)
    res = add("matmul", [left, right])
    res.name = root.name
    return res
