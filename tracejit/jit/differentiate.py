"""The generated backward: the op table's vjps applied to the traced graph, as more IR.

The vjps run on Tensors whose data are IR nodes, so their ops are recorded into the same joint
graph by the active tracer; `ir.autodiff.reverse_accumulate` does the walk. Backward nodes carry
the source location of the forward op they differentiate.
"""
from __future__ import annotations

from .. import autograd as agm
from ..ir.autodiff import reverse_accumulate
from ..ops import REGISTRY
from ..tensor import Tensor, _ndarray


def differentiate(tr, user_nodes, diff_out, primals, rg_inputs):
    """Append the backward computation to the traced graph; return tangents and input grads."""
    g = tr.graph
    tangents, seeds = [], {}
    for k, i in enumerate(diff_out):
        n = user_nodes[i]
        t = g.add_input(n.type, f"g{k}")
        t.meta["rg"] = False
        tangents.append(t)
        tt = Tensor._make(t)
        seeds[id(n)] = tt if id(n) not in seeds else seeds[id(n)] + tt
    grads = input_grads(tr, seeds, [primals[i] for i in rg_inputs])
    out = []
    for p, gr in zip([primals[i] for i in rg_inputs], grads):
        if gr is not None:
            d = gr._data
            if d is p:
                d = g.add("copy", [d], {}, d.type)
            out.append(d if type(d) is not _ndarray else g.const(d))
        else:
            out.append(None)
    return tangents, out


def input_grads(tr, seeds: dict, inputs: list) -> list:
    """The gradient of each graph input: the sum over every value its tensor had in the trace
    (the input, then each in-place update under no_grad), as eager's leaf gathers them."""
    versions = [tr.versions_of(n) for n in inputs]
    flat = iter(grads_of(tr, seeds, [v for vs in versions for v in vs]))
    out = []
    for vs in versions:
        total = None
        for g in [next(flat) for _ in vs]:
            if g is not None:
                if type(g._data) is _ndarray:
                    g = Tensor._make(tr.graph.const(g._data))
                total = g if total is None else total + g
        out.append(total)
    return out


def grads_of(tr, seeds: dict, wrt: list) -> list:
    """Gradients (Tensors over graph nodes, or None) of the nodes `wrt`, backpropagating
    `seeds` ({id(node): gradient Tensor}) through the traced graph so far: the generated
    backward of a compiled function, and loss.backward() inside one."""
    g = tr.graph

    def apply_vjp(node, grad):
        op = REGISTRY[node.op]
        tr.loc_override = node.loc
        ins = [Tensor._make(i) for i in node.inputs]
        out = Tensor._make(node)
        res = op.vjp(grad, out, *ins, **node.params)
        in_rg = node.meta.get("in_rg", ())
        outs = []
        for k, (inp, r) in enumerate(zip(node.inputs, res)):
            if r is None or k >= len(in_rg) or not in_rg[k]:
                outs.append(None)
                continue
            if callable(r):
                r = r()
            if r is None:
                outs.append(None)
                continue
            outs.append(agm._fit(r, (inp.type.shape, inp.type.dtype)))
        return outs

    def differentiable(n):
        return bool(n.meta.get("rg")) and n.op not in ("input", "const") and \
            REGISTRY[n.op].vjp is not None

    grads = reverse_accumulate(list(g.nodes), seeds, differentiable, apply_vjp,
                               lambda a, b: a + b)
    tr.loc_override = None
    return [grads.get(id(n)) for n in wrt]
