"""Dead code elimination: drop the nodes whose values no output of the graph depends on.

Graph inputs always stay (they are the signature), even when unused; surviving nodes keep their
names, order, params and locs.
"""
from __future__ import annotations

from ..graph import Graph


def dce(g: Graph) -> Graph:
    """Remove every node that no output uses, directly or through other nodes. Mutates `g`.

    Before:

        def f(%x: f32[3]) -> (f32[3]):
          %0: f32[3] = exp %x
          %1: f32[3] = neg %x
          %2: f32[3] = tanh %1
          return %0

    After:

        def f(%x: f32[3]) -> (f32[3]):
          %0: f32[3] = exp %x
          return %0
    """
    live = {id(o) for o in g.outputs}
    kept = []
    for n in reversed(g.nodes):
        if id(n) in live:
            kept.append(n)
            live.update(id(i) for i in n.inputs)
    kept.reverse()
    g.nodes = kept
    return g
