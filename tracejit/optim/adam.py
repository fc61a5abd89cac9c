"""Adam and AdamW (with amsgrad): PyTorch's single-tensor update, step for step.

The step counter is a float32 0-d tensor in the state, as in PyTorch's state dicts; the bias
corrections are computed in Python floats from its value, as PyTorch's default (non-capturable)
implementation does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .. import autograd as ag
from ..factories import tensor, zeros_like
from ..tensor import Tensor, _tracer
from .optimizer import Optimizer, implementation


def _lerp_(t: Tensor, end: Tensor, weight: float) -> Tensor:
    """t.lerp_(end, weight) with PyTorch's formula (two branches for accuracy)."""
    if weight < 0.5:
        return t.add_((end - t) * weight)
    return t.copy_(end - (end - t) * (1.0 - weight))


class Adam(Optimizer):
    # what a loaded group lacking the key gets (see Optimizer._fill_group)
    _legacy_defaults = {"amsgrad": False, "maximize": False, "foreach": None,
                        "capturable": False, "differentiable": False,
                        "decoupled_weight_decay": False, "fused": None}

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        implementation(foreach, fused, capturable, differentiable)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad,
                                  "maximize": maximize, "foreach": foreach,
                                  "capturable": capturable, "differentiable": differentiable,
                                  "fused": fused,
                                  "decoupled_weight_decay": decoupled_weight_decay})

    @ag.no_grad()
    def step(self, closure: Callable | None = None):
        loss = self._closure(closure)
        for group, p, grad in self._updates():
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad = group["weight_decay"], group["amsgrad"]
            state = self.state[p]
            if not state:
                state["step"] = tensor(0.0)
                state["exp_avg"] = zeros_like(p)
                state["exp_avg_sq"] = zeros_like(p)
                if amsgrad:
                    state["max_exp_avg_sq"] = zeros_like(p)
            step_t, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
            step_t.add_(1)
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * wd)
                else:
                    grad = grad.add(p, alpha=wd)
            _lerp_(exp_avg, grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
            # inside tracejit.compile the count is a traced tensor: the bias corrections are
            # then computed from it in float64, as Python computes them from float(step_t)
            step = step_t.double() if _tracer["active"] else float(step_t)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2 ** 0.5
            if amsgrad:
                max_sq = state["max_exp_avg_sq"]
                max_sq.copy_(max_sq.maximum(exp_avg_sq))
                denom = (max_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            else:
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            p.add_(exp_avg * -step_size / denom)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * wd before the Adam update."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def _fill_group(self, group: dict) -> None:
        super()._fill_group(group)
        # as torch: AdamW is Adam with decoupled weight decay whatever a checkpoint says
        # (one from torch < 2.6 lacks the key, and Adam's fallback for it is False)
        group["decoupled_weight_decay"] = True
