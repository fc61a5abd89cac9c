"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay: PyTorch's
single-tensor update, step for step."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .. import autograd as ag
from .optimizer import Optimizer, implementation


class SGD(Optimizer):
    """p -= lr * g with g = grad + wd * p, and with momentum buf = mu * buf + (1 - dampening) * g
    (buf = g on the first step); Nesterov uses g + mu * buf."""

    # what a loaded group lacking the key gets (see Optimizer._fill_group)
    _legacy_defaults = {"nesterov": False, "maximize": False, "foreach": None,
                        "differentiable": False, "fused": False}

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        implementation(foreach, fused, False, differentiable)
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize, "foreach": foreach,
                                  "differentiable": differentiable, "fused": fused})

    def _state_ready(self, group: dict, p) -> bool:
        return group["momentum"] == 0 or "momentum_buffer" in self.state.get(p, {})

    @ag.no_grad()
    def step(self, closure: Callable | None = None):
        loss = self._closure(closure)
        for group, p, grad in self._updates():
            lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            if wd != 0:
                grad = grad.add(p, alpha=wd)
            if mu != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.clone().detach()
                else:
                    buf.mul_(mu).add_(grad, alpha=1 - damp)
                grad = grad.add(buf, alpha=mu) if nesterov else buf
            p.add_(grad, alpha=-lr)
        return loss
