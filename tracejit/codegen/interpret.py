"""The reference backend: run a graph node by node with the op table's numpy implementations.

`backend="interpret"` uses it, the other backends are tested against it, and the NaN debugger
uses it to find the first node that produced a NaN or inf.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ops import REGISTRY


class Interpreted:
    """Callable: list of arrays (graph inputs) -> list of fresh arrays (graph outputs)."""

    def __init__(self, g: Graph) -> None:
        self.graph = g
        self.kernels: list = []
        self._plan = [(n, REGISTRY[n.op].eager if n.op != "const" else None) for n in g.nodes]

    def describe(self) -> str:
        return "interpreted: one numpy call per node"

    def __call__(self, arrays: list, on_node=None) -> list:
        env = {id(i): a for i, a in zip(self.graph.inputs, arrays)}
        for n, f in self._plan:
            if f is None:
                out = n.value
            else:
                out = f(*[env[id(i)] for i in n.inputs], **n.params)
                if type(out) is not np.ndarray:
                    out = np.asarray(out)
            env[id(n)] = out
            if on_node is not None:
                on_node(n, out, env)
        inputs = [a for a in arrays]
        outs = []
        for o in self.graph.outputs:
            a = env[id(o)]
            # outputs are fresh buffers: never hand back (a view of) an input or a constant
            if o.op in ("input", "const") or (a.base is not None and any(
                    np.shares_memory(a, i) for i in inputs)) or not a.flags.writeable:
                a = np.array(a, copy=True)
            outs.append(a)
        return outs


def compile_graph(g: Graph) -> Interpreted:
    return Interpreted(g)
