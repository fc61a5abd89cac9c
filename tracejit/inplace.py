"""In-place ops (`add_`, `x[i] = v`, `zero_`, ...) with PyTorch's autograd rules.

An in-place op is computed out of place and its result written into the tensor's buffer; the
version counter (shared with views) is bumped, so a vjp that saved the old values raises at
backward instead of silently using the new ones. When the op is recorded for autograd, it reads a
snapshot of the old values and the tensor's `grad_fn` moves to the new node, as PyTorch rebases
history. A leaf that requires grad cannot be modified in place in grad mode; neither can a view
that takes part in autograd (PyTorch supports that through view tracking; tracejit refuses it
rather than get it wrong).
"""
from __future__ import annotations

import numpy as np

from . import autograd as ag
from .tensor import Tensor, _ndarray, _tracer


def check_inplace(t: Tensor, *others) -> bool:
    """Raise if `t` may not be modified in place; return whether autograd must record it."""
    grad = ag.is_grad_enabled()
    involved = t.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)
    if grad and t.requires_grad and t.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation. Wrap the update in `with tracejit.no_grad():` (as "
                           "optimizers do) or work on a clone.")
    if grad and involved and t._base is not None:
        raise RuntimeError("in-place modification of a view that takes part in autograd is not "
                           "supported by tracejit; use an out-of-place op (or .clone() the view "
                           "first)")
    if (type(t._data) is _ndarray or t.is_cuda) and not t._data.flags.writeable:
        raise RuntimeError("unsupported operation: more than one element of the written-to "
                           "tensor refers to a single memory location (an expanded tensor); "
                           "call .clone() before writing to it")
    return grad and involved


def commit(t: Tensor, result: Tensor) -> Tensor:
    """Write `result` into `t` (same shape; cast to t's dtype) and move t's history to it."""
    if tuple(result.shape) != tuple(t.shape):
        raise RuntimeError(f"output with shape {list(t.shape)} doesn't match the broadcast "
                           f"shape {list(result.shape)}")
    if result.dtype is not t.dtype:
        if (result.dtype.is_floating_point and not t.dtype.is_floating_point) or \
                (not result.dtype.is_bool and t.dtype.is_bool):
            raise RuntimeError(f"result type {result.dtype.name} can't be cast to the desired "
                               f"output type {t.dtype.name}")
        result = result.to(t.dtype)
    if type(t._data) is not _ndarray or type(result._data) is not _ndarray:
        if not (t.is_cuda and result.is_cuda):
            if not _tracer["active"]:       # concrete arrays on two devices
                raise RuntimeError(f"Expected all tensors to be on the same device, but found "
                                   f"at least two devices, {t.device} and {result.device}! "
                                   f"(an in-place update writes into a {t.device} tensor)")
            _tracer["inplace"](t, result)
            return t
        t._data.copy_from(result._data)     # the GPU: a copy kernel into t's buffer
    else:
        np.copyto(t._data, result._data)
    t._version[0] += 1
    if result.requires_grad:
        t.requires_grad = True
        t.grad_fn = result.grad_fn
        t._out_idx = result._out_idx
    return t


def inplace(t: Tensor, fn, *others) -> Tensor:
    """Apply `fn(old_t, *others)` and store the result into t."""
    record = check_inplace(t, *others)
    if record:
        with ag.enable_grad():
            old = t._snapshot()
            result = fn(old, *others)
            if old.requires_grad and not result.requires_grad:
                # the new values ignore the old ones (zero_, fill_, copy_ of a constant): t stays
                # in the graph with a zero gradient to its history, as in PyTorch (else t would
                # keep its old grad_fn and backward would be silently wrong)
                from .ops import REGISTRY
                from .tensor import _created, apply
                no = _created(Tensor._make(np.zeros((), np.bool_)))
                result = apply(REGISTRY["where"], no, old, result)
    else:
        result = fn(t, *others)
    return commit(t, result)


def _snapshot(self: Tensor) -> Tensor:
    """The current values and history of `self`, unaffected by later in-place writes."""
    s = Tensor._make(np.array(self._data, copy=True) if type(self._data) is _ndarray
                     else self._data.copy() if self.is_cuda else self._data,
                     self.requires_grad, self.grad_fn)
    s._out_idx = self._out_idx
    return s


Tensor._snapshot = _snapshot
