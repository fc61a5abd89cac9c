"""Reductions over row-wise values, split in two so that the row part joins the row kernel.

`sum(layer_norm(x) * x)` over all of x cannot be fused into the kernel that computes each row's
mean and variance: that kernel reduces over the last dim only, so a second kernel would read
all of x again. Written as `sum(sum(f, dims=(1,), keepdim=True), dims=(0, 1))`, the inner sum
is one more pass of the row kernel (the row is still in cache) and the outer one reads one
value per row. The rewrite is exact up to the order of a float sum (which the backends'
blocked summation does not keep anyway); it is made only where it pays: the reduced value
depends, through elementwise ops and broadcasts, on a reduction over a smaller set of axes
that includes the innermost one, of a tensor of the same shape.

    before:  %14: f32[] = sum %13, dims=(0, 1), keepdim=False      # %13 uses %0 = sum %x, dims=(1,)
    after :  %14.1: f32[64,1] = sum %13, dims=(1,), keepdim=True
             %14: f32[] = sum %14.1, dims=(0, 1), keepdim=False
"""
from __future__ import annotations

from ...ops import REGISTRY
from ..graph import Graph, Node, infer_type
from ..kernel import REDUCTIONS

_THROUGH = ("expand", "reshape", "detach", "copy")
_WALK_LIMIT = 500               # nodes looked at per reduction


def _row_dims(r: Node) -> tuple:
    """The dims of a reduction that r's input depends on and that r could be split on, or ()."""
    x = r.inputs[0]
    dims = set(r.params["dims"])
    last = x.ndim - 1
    stack, seen = [x], set()
    while stack and len(seen) < _WALK_LIMIT:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.op in REDUCTIONS and n is not x:
            s = set(n.params["dims"])
            if n.inputs[0].shape == x.shape and last in s and s < dims:
                return tuple(sorted(s))
            continue
        if n.op in _THROUGH or (n.op in REGISTRY and REGISTRY[n.op].kind == "elementwise"):
            stack.extend(n.inputs)
    return ()


def split_reductions(g: Graph) -> Graph:
    """g with such reductions split; g itself if there is none (g is never changed)."""
    plan = {id(n): s for n in g.nodes if n.op in REDUCTIONS and n.inputs[0].type.numel > 0
            for s in [_row_dims(n)] if s}
    if not plan:
        return g

    def replace(n, ins, out, new):
        if id(n) not in plan:
            return None
        params = {"dims": plan[id(n)], "keepdim": True}
        inner = Node(n.op, ins, params, infer_type(n.op, ins, params), n.loc, f"{n.name}.1")
        outer = Node(n.op, [inner], n.params, n.type, n.loc, n.name)
        out.nodes += [inner, outer]
        return outer
    return g.rewrite(replace)
