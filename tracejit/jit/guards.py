"""What a call of a compiled function checks before it runs a trace: the closed-over tensors
of this call (a gradient read through its owner, a learning rate read from its param group), the
guards recorded while tracing (optimizer hyperparameters and state, module parameters, whether a
.grad was None), and the calls a trace does not cover, which run eagerly (aliased inputs, a
tensor with a history where the trace assumed a leaf).
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..tensor import Tensor, _on_device


def needs_eager(entry, leaves, imp) -> bool:
    """Calls the graph does not cover: aliased inputs; an argument whose .grad backward()
    would accumulate into; a tensor backward() treated as a leaf that now has a history."""
    return bool((entry.mutations or entry.grad_sets) and aliased(entry, leaves, imp) or
                any(leaves[i]._grad is not None for i in entry.arg_grads) or
                any((leaves[i] if k == "arg" else imp[i]).grad_fn is not None
                    for k, i in entry.backward_leaves))


def closed_over(entry) -> list | None:
    """This call's closed-over tensors (a gradient is read through its owner: backward makes
    a new one each step), or None when one no longer matches the trace."""
    for owner, was_none in entry.grad_guards:
        if (owner._grad is None) != was_none:
            return None
    for fn, expected, same in entry.value_guards:
        v = fn()
        if (v is not expected) if same else (v != expected):
            return None
    imp = entry.implicit
    if entry.grad_guards or entry.lifted:
        imp = [t if src is None else src._grad if isinstance(src, Tensor) else scalar_value(src())
               for t, src in zip(imp, entry.implicit_src)]
        if any(t is None for t in imp):
            return None
    for t, (shape, dtype, rg, kind) in zip(imp, entry.implicit_guard):
        if t._data.shape != shape or t.dtype is not dtype or t.requires_grad != rg or \
                type(t._data) is not kind:
            return None
    return imp


def scalar_value(v) -> Tensor | None:
    """A lifted float's value for this call (None: no longer a number, retrace)."""
    return Tensor._make(np.array(float(v))) if isinstance(v, (float, int, np.floating)) and \
        not isinstance(v, bool) else None


def aliased(entry, leaves, imp) -> bool:
    """Whether a tensor the function modifies in place shares memory with another input (the
    same tensor passed twice, two views of one buffer), or, when it assigns .grad, a tensor is
    both an argument and closed over (its gradient would be split in two). The graph treats
    inputs as distinct, so such a call runs eagerly."""
    if entry.grad_sets:
        args = {id(x) for x in leaves}
        if any(id(t) in args for t in imp):
            return True
    if not entry.mutations:
        return False
    roots = [_root(x._data) for x in leaves if type(x) is not float] + \
        [_root(t._data) for t in imp]
    if len(set(roots)) == len(roots):
        return False
    return any(roots.count(_root((leaves[i] if kind == "arg" else imp[i])._data)) > 1
               for kind, i in entry.mutations)


def _root(a) -> int:
    """id of the object that owns an array's memory (numpy views chain through .base; a CUDA
    array and its views share their device buffer)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    buf = getattr(a, "buf", None) if _on_device(a) else None
    return id(a) if buf is None else id(buf)


def guard_text(cf, leaves, entry) -> str:
    parts = []
    for i, x in enumerate(leaves):
        nm = cf._argnames[i] if i < len(cf._argnames) else f"a{i}"
        if isinstance(x, Tensor):
            parts.append(f"{nm}: {x.dtype.name}{list(x.shape)} requires_grad={x.requires_grad}")
        else:
            parts.append(f"{nm}: float (traced as a 0-d input)")
    for k, (shape, dtype, rg, _) in enumerate(entry.implicit_guard):
        parts.append(f"closed-over c{k}: {dtype.name}{list(shape)} requires_grad={rg}")
    parts.append(f"grad mode: {ag._state['grad']}")
    return "; ".join(parts)

