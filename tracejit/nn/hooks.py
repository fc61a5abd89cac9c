"""Module hooks: calling forward between them (the rules of torch's `Module._call_impl`), and
the handles that `register_*_hook` return."""
from __future__ import annotations

import warnings
from collections import OrderedDict

from ..tensor import _tracer
from .backward_hooks import BackwardHook


class RemovableHandle:
    """Returned by `register_forward_hook`; `handle.remove()` unregisters the hook (and its
    flags in `extra`, the dicts of hooks registered with_kwargs or always_call)."""

    def __init__(self, hooks: dict, key: int, extra: tuple = ()) -> None:
        self._hooks, self.id, self._extra = hooks, key, extra

    def remove(self) -> None:
        self._hooks.pop(self.id, None)
        for d in self._extra:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _RebindingHandle(RemovableHandle):
    """The handle of a backward hook: removing it rebinds the module's hook dict (see
    Module._add_backward_hook)."""

    def __init__(self, module, attr: str, key: int) -> None:
        self._module, self._attr, self.id = module, attr, key

    def remove(self) -> None:
        hooks = OrderedDict(self._module.__dict__[self._attr])
        if hooks.pop(self.id, None) is not None:
            self._module.__dict__[self._attr] = hooks


def call_with_hooks(module, args: tuple, kwargs: dict):
    """forward between its hooks, with torch's rules: a pre-hook's non-None result replaces
    the args (with_kwargs: an (args, kwargs) pair), a hook's replaces the output, and when
    anything raises, the always_call hooks that have not run yet still run."""
    result, called = None, set()
    try:
        pre_kw = module._forward_pre_hooks_with_kwargs
        for key, hook in list(module._forward_pre_hooks.items()):
            if key in pre_kw:
                r = hook(module, args, kwargs)
                if r is not None:
                    if not (isinstance(r, tuple) and len(r) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple "
                                           f"of (new_args, new_kwargs), but got {r}.")
                    args, kwargs = r
            else:
                r = hook(module, args)
                if r is not None:
                    args = r if isinstance(r, tuple) else (r,)
        bw = None
        if module._backward_hooks or module._backward_pre_hooks:
            if _tracer["active"]:   # its nodes are eager autograd: the call runs eagerly
                _tracer["break"](f"{type(module).__name__} has a full backward hook")
            bw = BackwardHook(module, list(module._backward_hooks.values()),
                              list(module._backward_pre_hooks.values()))
            args = bw.setup_input_hook(args)
        result = module.forward(*args, **kwargs)
        kw = module._forward_hooks_with_kwargs
        for key, hook in list(module._forward_hooks.items()):
            called.add(key)
            r = hook(module, args, kwargs, result) if key in kw else hook(module, args, result)
            if r is not None:
                result = r
        if bw is not None:
            bw.check_inplace()
            result = bw.setup_output_hook(result)
        return result
    except Exception:
        # not while tracing, as torch skips them while compiling: a graph break is an
        # exception, and the eager rerun will call them
        if not _tracer["active"]:
            _always_called_hooks(module, args, kwargs, result, called)
        raise


def _always_called_hooks(module, args, kwargs, result, called: set) -> None:
    kw = module._forward_hooks_with_kwargs
    for key, hook in list(module._forward_hooks.items()):
        if key not in module._forward_hooks_always_called or key in called:
            continue
        try:
            r = hook(module, args, kwargs, result) if key in kw else hook(module, args, result)
            if r is not None:
                result = r
        except Exception as e:    # the first error is the one that propagates
            warnings.warn(f"module forward hook with ``always_call=True`` raised an "
                          f"exception that was silenced as another error was raised in "
                          f"forward: {e}", stacklevel=4)     # (the module's caller)
