"""Results of a compiled call that alias its inputs, as in eager: views of an input are
replayed on the input itself (they share its memory, version counter and autograd), and inputs
the function writes in place that the backward reads are copied before the call."""
from __future__ import annotations

from ..ops import REGISTRY
from ..tensor import Tensor, _ndarray, apply


def copy_array(a):
    """A copy of an input array (numpy or CUDA)."""
    if type(a) is _ndarray:
        return a.copy()
    from ..codegen.cuda import eager
    return eager.copy(a)


VIEW_OPS = ("reshape", "permute", "expand", "detach", "index")
CONTIGUOUS = "contiguous"       # a `copy` traced from x.contiguous(): eager returns x itself
#                                 when it is contiguous, a copy otherwise


def views_of_input(g, user_nodes, sym, implicit, same: dict) -> dict:
    """{result: (input, [(op, params)])} for results that are a chain of view ops (reshape,
    permute, expand, detach, basic indexing, contiguous()) of an argument or a closed-over
    tensor: eager returns views sharing the input's memory (x[0], x.t()), so a call replays the
    chain on the input itself rather than return the graph's copy (as torch.compile does)."""
    if len(g.inputs) != len(sym) + len(implicit):
        return {}
    inputs = {id(n): ("arg", j) if j < len(sym) else ("imp", j - len(sym))
              for j, n in enumerate(g.inputs)
              if j >= len(sym) or type(sym[j]) is Tensor}      # (not a float argument)
    out = {}
    for k, node in enumerate(user_nodes):
        chain = []
        while id(node) not in inputs and (node.op in VIEW_OPS and (
                node.op != "index" or len(node.inputs) == 1)      # basic keys only
                or node.op == "copy" and node.meta.get("contiguous")):
            chain.append((CONTIGUOUS, None) if node.op == "copy" else
                         (REGISTRY[node.op], dict(node.params)))
            node = node.inputs[0]
        if chain and k not in same and id(node) in inputs:
            out[k] = (inputs[id(node)], chain[::-1])
    return out


def replay_views(views: dict, leaves: list, imp: list, results: list) -> None:
    """Put eager's views of the inputs in `results` (see views_of_input)."""
    for k, ((kind, i), chain) in views.items():
        t = leaves[i] if kind == "arg" else imp[i]
        for op, params in chain:        # eager's own view ops: memory, version counter and
            t = t.contiguous() if op is CONTIGUOUS else apply(op, t, **params)  # autograd
        results[k] = t                  # shared with the input
