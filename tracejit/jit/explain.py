"""`tracejit.explain(fn)(*args)`: what compile does with a call, as text.

Shows the forward and backward graphs, graph breaks with their reasons and locations, the
guards, the values saved for backward with their bytes, the kernels of the backend and the
compile time per phase. Also configures TRACEJIT_LOG and implements TRACEJIT_DEBUG_NANS.
"""
from __future__ import annotations

import logging
import os
import sys

import numpy as np

from .compiled import CompiledFunction
from .guards import guard_text


class Explanation:
    def __init__(self, text: str, entry, cf: CompiledFunction) -> None:
        self.text = text
        self.entry = entry
        self.graph_breaks = [entry.reason] if entry.reason else []
        self.forward_graph = getattr(entry, "fwd_graph", None)
        self.backward_graph = getattr(entry, "bwd_graph", None)
        self.saved_bytes = getattr(entry, "saved_bytes", 0)
        self.kernels = list(getattr(getattr(entry, "fwd", None), "kernels", ())) + \
            list(getattr(getattr(entry, "bwd", None), "kernels", ()) or ())
        self.stats = dict(entry.stats)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def explain(fn, backend: str | None = None):
    """`explain(fn)(*args, **kwargs)` compiles fn for these arguments (without running the
    compiled code), prints the report and returns it as an `Explanation`."""
    cf = fn._compiled if hasattr(fn, "_compiled") else fn if isinstance(
        fn, CompiledFunction) else CompiledFunction(fn, backend=backend)

    def run(*args, **kwargs):
        import warnings
        fresh = CompiledFunction(cf.fn, backend=cf.backend or backend, fullgraph=False,
                                 name=cf.name, modules=cf._modules)
        key, leaves = fresh.key(args, kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry = fresh._miss(key, args, kwargs, leaves)
        text = _report(fresh, entry, leaves)
        print(text)
        return Explanation(text, entry, fresh)
    return run


def _report(cf, entry, leaves) -> str:
    out = [f"== tracejit.explain: {cf.name} =="]
    if entry.eager:
        reason, loc = entry.reason or ("?", "?")
        out.append("graph breaks: 1")
        out.append(f"  - {reason} at {loc}  (this call signature runs eagerly; "
                   f"fullgraph=True would raise)")
        return "\n".join(out)
    out.append("graph breaks: 0")
    out.append("guards: " + guard_text(cf, leaves, entry))
    out.append("\n-- forward graph --")
    out.append(str(entry.fwd_graph))
    if entry.bwd_graph is not None:
        out.append("\n-- backward graph --")
        out.append(str(entry.bwd_graph))
        out.append("\n-- saved for backward --")
        for kind, j in entry.saved:
            if kind == "input":
                n = entry.fwd_graph.inputs[j]
                out.append(f"  input %{n.name}: {n.type} ({n.type.nbytes} bytes, already alive)")
            else:
                n = entry.fwd_graph.outputs[j]
                out.append(f"  %{n.name}: {n.type} ({n.type.nbytes} bytes)")
        out.append(f"  total saved (new buffers): {entry.saved_bytes} bytes")
    else:
        out.append("\n(no backward graph: no input requires grad, or grad mode is off)")
    out.append("\n-- kernels --")
    for label, c in (("forward", entry.fwd), ("backward", entry.bwd)):
        if c is None:
            continue
        desc = c.describe() if hasattr(c, "describe") else repr(c)
        out.append(f"{label}: {len(getattr(c, 'kernels', ()))} kernels")
        out.append("  " + desc.replace("\n", "\n  "))
    out.append("\n-- compile time --")
    out.append(f"  trace {entry.t_trace * 1e3:.1f} ms, autodiff+partition "
               f"{entry.t_autodiff * 1e3:.1f} ms, passes {entry.t_passes * 1e3:.1f} ms, codegen "
               f"{entry.t_codegen * 1e3:.1f} ms")
    return "\n".join(out)


def configure_logging() -> None:
    """TRACEJIT_LOG=graph,guards,recompiles,partition,fusion,code -> DEBUG on those loggers."""
    spec = os.environ.get("TRACEJIT_LOG", "")
    for name in filter(None, (s.strip() for s in spec.split(","))):
        logger = logging.getLogger(f"tracejit.{name}")
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("[tracejit.%(name)s] %(message)s".replace(
                "tracejit.%(name)s", "%(name)s")))
            logger.addHandler(h)


def first_bad_node(graph, arrays) -> str | None:
    """Rerun a graph with the reference interpreter; name the first op whose output has a
    NaN/inf although none of its inputs had one."""
    from ..codegen.interpret import Interpreted
    found: list = []

    def check(n, out, env):
        if found or out.dtype.kind != "f" or np.all(np.isfinite(out)):
            return
        ins_ok = all(env[id(i)].dtype.kind != "f" or np.all(np.isfinite(env[id(i)]))
                     for i in n.inputs)
        if ins_ok:
            found.append(f"{n.op} (%{n.name}: {n.type}) at {n.loc or '?'}")
    Interpreted(graph)(arrays, on_node=check)
    return found[0] if found else None
