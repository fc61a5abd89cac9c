"""Graph-to-graph optimisation passes and `run_passes`, the pipeline that runs them in order.

Each pass is one module with one public function `Graph -> Graph` (it mutates and returns the
graph; its docstring shows the IR before and after). Passes never change the graph's inputs or
output types, keep every node's loc, and keep the names of the nodes they keep or rewrite, so a
`dump` of one pass diffs cleanly against the previous one. Canonical numbering (`%0`, `%1`, ...
in node order, `Graph.renumber()`) is applied once, at the end of `run_passes`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..graph import Graph, print_graph
from ..verify import verify
from .cse import cse
from .dce import dce
from .fold import fold
from .simplify import simplify
from .transpose import transpose

PASSES: dict[str, Callable[[Graph], Graph]] = {
    "simplify": simplify, "fold": fold, "cse": cse, "dce": dce, "transpose": transpose}

# transpose before simplify, which then cancels the permutes it leaves on operands
DEFAULT_PASSES = ("transpose", "simplify", "fold", "cse", "dce")


def run_passes(g: Graph, passes: Iterable = DEFAULT_PASSES, verify_each: bool = False,
               dump: Callable[[str, str, str], None] | None = None,
               renumber: bool = True) -> Graph:
    """Run `passes` (names from PASSES, or functions Graph -> Graph) over `g` in order.

    `verify_each` runs the verifier after every pass and names the pass that broke the graph;
    `dump(pass_name, before_text, after_text)` is called after every pass (TRACEJIT_DEBUG_DIR).
    With `renumber` (default) the result is renumbered canonically.
    """
    for p in passes:
        if isinstance(p, str):
            if p not in PASSES:
                raise ValueError(f"unknown pass {p!r}; available: {', '.join(PASSES)}")
            name, fn = p, PASSES[p]
        else:
            name, fn = getattr(p, "__name__", repr(p)), p
        before = print_graph(g) if dump is not None else None
        g = fn(g)
        if verify_each:
            try:
                verify(g)
            except ValueError as e:
                raise ValueError(f"the graph is invalid after pass {name!r}: {e}") from None
        if dump is not None:
            dump(name, before, print_graph(g))
    if renumber:
        g.renumber()
    return g


__all__ = ["DEFAULT_PASSES", "PASSES", "cse", "dce", "fold", "run_passes", "simplify",
           "transpose"]
