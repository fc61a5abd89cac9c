"""RMSprop (centered, momentum, weight decay): PyTorch's single-tensor update, step for step."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .. import autograd as ag
from ..factories import tensor, zeros_like
from .adam import _lerp_
from .optimizer import Optimizer, implementation


class RMSprop(Optimizer):
    # what a loaded group lacking the key gets (see Optimizer._fill_group)
    _legacy_defaults = {"momentum": 0, "centered": False, "foreach": None, "maximize": False,
                        "differentiable": False, "capturable": False}

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        # (torch's order: capturable, foreach, maximize and differentiable are positional)
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if alpha < 0.0:
            raise ValueError(f"Invalid alpha value: {alpha}")
        implementation(foreach, None, capturable, differentiable)
        super().__init__(params, {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                                  "centered": centered, "weight_decay": weight_decay,
                                  "capturable": capturable, "foreach": foreach,
                                  "maximize": maximize, "differentiable": differentiable})

    @ag.no_grad()
    def step(self, closure: Callable | None = None):
        loss = self._closure(closure)
        for group, p, grad in self._updates():
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            wd, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
            state = self.state[p]
            if not state:
                state["step"] = tensor(0.0)
                state["square_avg"] = zeros_like(p)
                if mu > 0:
                    state["momentum_buffer"] = zeros_like(p)
                if centered:
                    state["grad_avg"] = zeros_like(p)
            state["step"].add_(1)
            if wd != 0:
                grad = grad.add(p, alpha=wd)
            square_avg = state["square_avg"]
            square_avg.mul_(alpha).add_(grad * (1 - alpha) * grad)
            if centered:
                grad_avg = _lerp_(state["grad_avg"], grad, 1 - alpha)
                avg = (square_avg - grad_avg * grad_avg).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(eps)
            if mu > 0:
                buf = state["momentum_buffer"]
                buf.mul_(mu).add_(grad / avg)
                p.add_(buf, alpha=-lr)
            else:
                p.add_(grad * -lr / avg)
        return loss
