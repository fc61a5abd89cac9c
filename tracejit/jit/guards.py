"""What a call of a compiled function checks before it runs a trace: the closed-over tensors
of this call (a gradient read through its owner, a learning rate read from its param group), the
guards recorded while tracing (optimizer hyperparameters and state, module parameters, whether a
.grad was None), and the calls a trace does not cover, which run eagerly (aliased inputs, a
tensor with a history where the trace assumed a leaf).
"""
from __future__ import annotations

import types
from collections.abc import Callable

import numpy as np

from .. import autograd as ag
from ..tensor import Tensor, _on_device
from .reads import _ABSENT, by_value


def needs_eager(entry, leaves, imp) -> bool:
    """Calls the graph does not cover: aliased inputs; an argument whose .grad backward()
    would accumulate into; a tensor backward() treated as a leaf that now has a history."""
    return bool((entry.mutations or entry.grad_sets) and aliased(entry, leaves, imp) or
                any(leaves[i]._grad is not None for i in entry.arg_grads) or
                any((leaves[i] if k == "arg" else imp[i]).grad_fn is not None
                    for k, i in entry.backward_leaves))


def closed_over(entry) -> list | None:
    """This call's closed-over tensors (a gradient is read through its owner: backward makes
    a new one each step), or None when one of them, or a Python value the trace read (a
    global, a closure variable, a module attribute: reads.py), no longer matches the trace."""
    return entry.check() if entry.guarded else entry.implicit


def compile_check(entry, name: str) -> Callable[[], list | None]:
    """`entry.check`: one Python function, built once per trace, that checks its guards and
    returns this call's closed-over tensors (None: a guard failed). It tests the reads
    (identity, or equality of the same type for plain values), the .grad None-ness of
    closed-over tensors, the value guards and the closed-over tensors' metadata as a single
    expression over objects bound when it is made, a few tens of nanoseconds per guard (a loop
    over tuples costs several times that). `failed_guard` walks the same guards to say which
    one failed."""
    env: dict = {"A": _ABSENT}
    terms = []
    for i, (d, key, v, same, _) in enumerate(entry.reads):
        env.update({f"d{i}": d, f"k{i}": key, f"v{i}": v, f"t{i}": type(v)})
        x = f"d{i}.get(k{i}, A)"
        terms.append(f"{x} is v{i}" if same else
                     f"((x := {x}) is v{i} or type(x) is t{i} and x == v{i})")
    for i, (cell, v, same, _) in enumerate(entry.cell_reads):
        env.update({f"c{i}": cell, f"cv{i}": v, f"ct{i}": type(v)})
        terms.append(f"c{i}.cell_contents is cv{i}" if same else
                     f"((x := c{i}.cell_contents) is cv{i} or type(x) is ct{i} and x == cv{i})")
    for i, (owner, was_none) in enumerate(entry.grad_guards):
        env[f"o{i}"] = owner
        terms.append(f"o{i}._grad is {'' if was_none else 'not '}None")
    for i, (fn, v, same) in enumerate(entry.value_guards):
        env.update({f"f{i}": fn, f"fv{i}": v})
        terms.append(f"f{i}() is fv{i}" if same else f"not f{i}() != fv{i}")
    rebuilt = bool(entry.grad_guards or entry.lifted)   # then the tensors differ per call
    if not rebuilt:
        env["imp"] = entry.implicit
        for i, (t, (shape, dtype, rg, kind)) in enumerate(zip(entry.implicit,
                                                              entry.implicit_guard)):
            env.update({f"m{i}": t, f"ms{i}": shape, f"mn{i}": dtype.np, f"mk{i}": kind,
                        f"mr{i}": rg})
            terms.append(f"type(m{i}._data) is mk{i} and m{i}._data.shape == ms{i} and "
                         f"m{i}._data.dtype == mn{i} and m{i}.requires_grad == mr{i}")
    cond = " and ".join(terms) or "True"
    src = (f"def make({', '.join(env)}):\n"
           f"    def check():\n"
           f"        try:\n"
           f"            return {'True if' if rebuilt else 'imp if'} {cond} else None\n"
           f"        except (LookupError, ValueError):  # a value guard's lookup; an empty cell\n"
           f"            return None\n"
           f"    return check\n")
    ns: dict = {}
    exec(compile(src, f"<guards of {name}>", "exec"), ns)  # noqa: S102 - our own source
    check = ns["make"](**env)
    if not rebuilt:
        return check
    return lambda: _rebuilt(entry) if check() else None


def traced_now(entry) -> list | None:
    """The closed-over tensors of the call that made this trace. Its guards hold the values
    from before the trace ran the function's Python code, which may have changed them (a
    counter it increments): they are checked from the next call on, while this call is the one
    the trace ran for."""
    return _rebuilt(entry) if entry.grad_guards or entry.lifted else entry.implicit


def _rebuilt(entry) -> list | None:
    """The closed-over tensors of this call when some are read through their owner: a .grad,
    a lifted float (a learning rate)."""
    imp = [t if src is None else src._grad if isinstance(src, Tensor) else scalar_value(src())
           for t, src in zip(entry.implicit, entry.implicit_src)]
    if any(t is None for t in imp):
        return None
    for t, (shape, dtype, rg, kind) in zip(imp, entry.implicit_guard):
        if t._data.shape != shape or t.dtype is not dtype or t.requires_grad != rg or \
                type(t._data) is not kind:
            return None
    return imp


def failed_guard(entry) -> str:
    """Which guard of a trace fails for this call, in the user's words (for the recompile
    log and the recompile-limit warning)."""
    for d, key, v, same, what in entry.reads:
        x = d.get(key, _ABSENT)
        if x is not v and (same or type(x) is not type(v) or x != v):
            return f"{what} changed: expected {_show(v)}, got {_show(x)}"
    for cell, v, same, what in entry.cell_reads:
        try:
            x = cell.cell_contents
        except ValueError:
            x = _ABSENT
        if x is not v and (same or type(x) is not type(v) or x != v):
            return f"{what} changed: expected {_show(v)}, got {_show(x)}"
    for owner, was_none in entry.grad_guards:
        if (owner._grad is None) != was_none:
            return f"the .grad of a closed-over {_show(owner)} " + \
                ("appeared" if was_none else "became None")
    for fn, v, same in entry.value_guards:
        try:
            x = fn()
        except (LookupError, ValueError) as e:
            x = e
        if (x is not v) if same else (x != v):
            return f"a guarded value (optimizer state or hyperparameter, module hooks) " \
                   f"changed: expected {_show(v)}, got {_show(x)}"
    return "a closed-over tensor changed shape, dtype, requires_grad or device"


def _show(v) -> str:
    if v is _ABSENT or by_value(v):
        r = repr(v)
        return r if len(r) <= 60 else r[:57] + "..."
    if isinstance(v, Tensor):
        return f"tensor {v.dtype.name}{list(v.shape)} at {id(v):#x}"
    name = getattr(v, "__qualname__", None) or getattr(v, "__name__", None) \
        if isinstance(v, (type, types.FunctionType, types.ModuleType)) else None
    return f"<{type(v).__name__} {name}>" if isinstance(name, str) else \
        f"<{type(v).__name__} object at {id(v):#x}>"


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
    for *_, v, same, what in (*entry.reads, *entry.cell_reads):
        parts.append(f"{what} {'is' if same else '=='} {_show(v)}")
    parts.append(f"grad mode: {ag._state['grad']}")
    return "; ".join(parts)

