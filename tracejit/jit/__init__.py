"""The only layer that joins tensor, ir and codegen: `compile`, `explain`, `disable`."""
from __future__ import annotations

import inspect

from .compiled import CompiledFunction, disable
from .explain import configure_logging, explain
from .trace import GraphBreak

__all__ = ["CompiledFunction", "GraphBreak", "compile", "disable", "explain"]
configure_logging()


class CompiledModule:
    """`tracejit.compile(module)`: calls go through the compiled forward; everything else
    (parameters, state_dict, train/eval, attributes) is the very same module."""

    def __init__(self, module, **options) -> None:
        object.__setattr__(self, "_orig_mod", module)
        # through Module.__call__: the module's own forward hooks are traced too
        cf = CompiledFunction(module.__call__, modules=list(module.modules()), name="forward",
                              **options)
        try:
            cf._argnames = list(inspect.signature(module.forward).parameters)
        except (TypeError, ValueError):
            pass
        object.__setattr__(self, "_compiled", cf)

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def __repr__(self) -> str:
        return f"CompiledModule({self._orig_mod!r})"


def compile(fn=None, *, backend: str | None = None, fullgraph: bool = False, **unused):
    """Compile `fn` (a function, method or nn.Module); usable as `@compile` or
    `@compile(backend=..., fullgraph=...)`."""
    if unused:
        bad = ", ".join(unused)
        if set(unused) - {"mode", "dynamic", "options"}:
            raise TypeError(f"compile() got unexpected keyword arguments: {bad}")
    if fn is None:
        return lambda f: compile(f, backend=backend, fullgraph=fullgraph)
    if hasattr(fn, "forward") and hasattr(fn, "parameters") and callable(fn):
        return CompiledModule(fn, backend=backend, fullgraph=fullgraph)
    if isinstance(fn, CompiledFunction):
        return fn
    return CompiledFunction(fn, backend=backend, fullgraph=fullgraph)
