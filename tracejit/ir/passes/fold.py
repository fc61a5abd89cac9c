"""Constant folding: evaluate nodes whose operands are all consts, at compile time.

A node folds when every operand is a `const` (or it is a `full` source) and its result has at
most `max_numel` elements (64 by default), so that big constants are never baked into a graph.
The value comes from the op table's own numpy implementation (`REGISTRY[op].eager`), the same
code eager mode runs, so a folded value is bit for bit what eager would compute. Anything eager
would reject (integer division by zero, an empty `amax`, ...) or whose result does not match the
node's type is left in the graph for the runtime to report. The folded node keeps its name and loc.
"""
from __future__ import annotations

import numpy as np

from ...ops import REGISTRY
from ..graph import Graph, Node

MAX_NUMEL = 64
_SOURCES = {"full"}  # deterministic source ops; a random source must never be folded


def fold(g: Graph, max_numel: int = MAX_NUMEL) -> Graph:
    """Replace small all-const computations by consts. Mutates `g`.

    Before:

        def f(%x: f32[2]) -> (f32[2]):
          %0: f32[] = const 2.
          %1: f32[] = const 3.
          %2: f32[] = mul %0, %1
          %3: f32[2] = full shape=(2,), value=0.5, dtype='float32'
          %4: f32[2] = add %x, %2
          %5: f32[2] = mul %4, %3
          return %5

    After (`dce` then drops %0 and %1):

        def f(%x: f32[2]) -> (f32[2]):
          %0: f32[] = const 2.
          %1: f32[] = const 3.
          %2: f32[] = const 6.
          %3: f32[2] = const [0.5,0.5]
          %4: f32[2] = add %x, %2
          %5: f32[2] = mul %4, %3
          return %5
    """
    for n in g.nodes:
        if n.op == "const" or n.type.numel > max_numel:
            continue
        op = REGISTRY.get(n.op)
        if op is None or (op.kind == "source" and n.op not in _SOURCES):
            continue
        if not all(i.op == "const" for i in n.inputs):
            continue
        value = _evaluate(n, op)
        if value is not None:
            n.op, n.inputs, n.params, n.value = "const", [], {}, value
    return g


def _evaluate(n: Node, op) -> np.ndarray | None:
    args = [i.value for i in n.inputs]
    if n.op in ("floordiv", "remainder") and n.type.dtype.is_integer and not np.all(args[1]):
        return None  # eager raises ZeroDivisionError here; keep that for run time
    try:
        with np.errstate(all="ignore"):
            out = op.eager(*args, **n.params)
    except (ArithmeticError, LookupError, RuntimeError, TypeError, ValueError):
        # eager rejects it: leave it, so the runtime raises the same error and message
        return None
    out = np.array(out, copy=True, order="C")  # own the data: eager may return views
    if out.shape != n.type.shape or out.dtype != n.type.dtype.np:
        return None
    return out
