"""Common subexpression elimination: merge nodes that compute the same value.

Two nodes are the same when they apply the same op to the same operand values (by identity, after
earlier merges) with equal params, or are consts of equal type and bytes. Params compare by type
and `repr`, so `0.0` and `-0.0` (equal as floats, different values) never merge, nor do `1` and
`True`. The first node is kept; later uses of a duplicate are redirected to it.
"""
from __future__ import annotations

from ..graph import Graph


def cse(g: Graph) -> Graph:
    """Merge duplicate nodes into their first occurrence. Mutates `g`.

    Before:

        def f(%x: f32[3]) -> (f32[3]):
          %0: f32[3] = exp %x
          %1: f32[3] = exp %x
          %2: f32[3] = add %0, %1
          return %2

    After:

        def f(%x: f32[3]) -> (f32[3]):
          %0: f32[3] = exp %x
          %2: f32[3] = add %0, %0
          return %2
    """
    first: dict = {}
    repl: dict[int, object] = {}
    kept = []
    for n in g.nodes:
        n.inputs = [repl.get(id(i), i) for i in n.inputs]
        key = _key(n)
        if key is not None:
            seen = first.setdefault(key, n)
            if seen is not n:
                repl[id(n)] = seen
                continue
        kept.append(n)
    g.nodes = kept
    g.outputs = [repl.get(id(o), o) for o in g.outputs]
    return g


def _key(n):
    if n.op == "const":
        v = n.value
        return ("const", str(n.type), v.dtype.str, v.shape, v.tobytes())
    try:
        params = tuple(sorted((k, _freeze(v)) for k, v in n.params.items()))
        key = (n.op, str(n.type), tuple(id(i) for i in n.inputs), params)
        hash(key)
    except TypeError:  # an unhashable param: leave the node alone
        return None
    return key


def _freeze(v):
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_freeze(x) for x in v))
    if isinstance(v, dict):
        raise TypeError("dict param")
    return (type(v).__name__, repr(v))
