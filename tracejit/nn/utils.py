"""`tj.nn.utils`: gradient clipping and parameter/vector conversion, as `torch.nn.utils`."""
from __future__ import annotations

import math
from collections.abc import Iterable

from .. import autograd as ag
from ..factories import tensor
from ..movement import cat
from ..tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


@ag.no_grad()
def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm; returns the
    norm before clipping (PyTorch's formula: coef = max_norm / (norm + 1e-6), capped at 1)."""
    grads = _grads(parameters)
    if not grads:
        return tensor(0.0)
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        norms = [g.abs().amax() for g in grads]
        total = norms[0] if len(norms) == 1 else cat([n.reshape(1) for n in norms]).amax()
    else:
        norms = [(g.abs() ** norm_type).sum() for g in grads]
        total = norms[0]
        for n in norms[1:]:
            total = total + n
        total = total ** (1.0 / norm_type)
    if error_if_nonfinite and not bool(total.isfinite()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           f"`parameters` is non-finite, so it cannot be clipped. To disable "
                           f"this error and scale the gradients by the non-finite norm anyway, "
                           f"set `error_if_nonfinite=False`")
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return total


@ag.no_grad()
def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float,
                     foreach=None) -> None:
    for g in _grads(parameters):
        g.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    return cat([p.reshape(-1) for p in parameters])


@ag.no_grad()
def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    start = 0
    for p in parameters:
        n = p.numel()
        p.copy_(vec[start:start + n].reshape(p.shape))
        start += n
