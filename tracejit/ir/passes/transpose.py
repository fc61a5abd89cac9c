"""Move a transpose of a matmul's result onto its operands: (a @ b)^T = b^T @ a^T.

Linear layers compute `x @ w.T`, so their weight gradient comes out of autodiff as the transpose
of a matmul, which would be copied into a fresh contiguous buffer (a strided, cache-unfriendly
copy). Swapping the operands instead makes BLAS write the gradient in the right layout; the
operand transposes are views that BLAS reads directly, or cancel against existing ones in
`simplify` (which runs after this pass).
"""
from __future__ import annotations

from ..graph import Graph, Node, TensorType
from .dce import dce


def _swap_last(nd: int) -> tuple:
    return tuple(range(nd - 2)) + (nd - 1, nd - 2)


def transpose(g: Graph) -> Graph:
    """Rewrite `permute(matmul(a, b))` (last two dims swapped, matmul used once) as
    `matmul(permute(b), permute(a))`. Mutates `g`.

    Before:

        def f(%a: f32[256,512], %g: f32[256,10]) -> (f32[10,512]):
          %0: f32[512,256] = permute %a, dims=(1, 0)
          %1: f32[512,10] = matmul %0, %g
          %2: f32[10,512] = permute %1, dims=(1, 0)
          return %2

    After:

        def f(%a: f32[256,512], %g: f32[256,10]) -> (f32[10,512]):
          %0: f32[512,256] = permute %a, dims=(1, 0)
          %2t0: f32[10,256] = permute %g, dims=(1, 0)
          %2t1: f32[256,512] = permute %0, dims=(1, 0)
          %2: f32[10,512] = matmul %2t0, %2t1
          return %2
    """
    users = g.users()
    out_ids = {id(o) for o in g.outputs}
    new_nodes: list = []
    for n in g.nodes:
        m = n.inputs[0] if n.op == "permute" else None
        if m is None or m.op != "matmul" or n.params["dims"] != _swap_last(n.type.ndim) or \
                len(users[id(m)]) != 1 or id(m) in out_ids or \
                any(i.type.shape[:-2] != n.type.shape[:-2] for i in m.inputs):
            new_nodes.append(n)
            continue
        a, b = m.inputs
        ts = []
        for x in (b, a):
            dims = _swap_last(x.type.ndim)
            t = Node("permute", [x], {"dims": dims},
                     TensorType(tuple(x.type.shape[d] for d in dims), x.type.dtype), n.loc,
                     name=f"{n.name}t{len(ts)}")
            ts.append(t)
            new_nodes.append(t)
        # reuse `n` (its users and name stay) as the swapped matmul
        n.op, n.inputs, n.params = "matmul", ts, {}
        new_nodes.append(n)
    g.nodes = new_nodes
    return dce(g)  # the original matmul is dead now
