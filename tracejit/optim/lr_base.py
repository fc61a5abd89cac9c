"""`LRScheduler`, the base of the learning-rate schedulers, as PyTorch's.

A scheduler sets `group['lr']` of its optimizer each time `step()` is called (once per epoch,
or per batch for the cyclic ones, after `optimizer.step()`); construction performs the first
step (epoch 0), as in PyTorch. `step()` is PyTorch's: a count, then `_update_lr`, which
SequentialLR also calls to restart a scheduler at a milestone.
"""
from __future__ import annotations

import types
import warnings

from ..tensor import _tracer
from .optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


class LRScheduler:
    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        f"resuming scheduler with last_epoch >= 0.\nThis typically happens "
                        f"when:\n1. You're trying to resume training from a checkpoint but "
                        f"haven't properly loaded the optimizer state\n2. You're using "
                        f"last_epoch >= 0 for a fresh training run (not recommended)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        # the constructor's step: a scheduler resumed at last_epoch = k keeps the lr it finds
        # (torch's _initial_mode), where get_lr would move it one step further
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list:
        raise NotImplementedError

    def get_last_lr(self) -> list:
        return self._last_lr

    def _not_traced(self) -> None:
        if _tracer["active"]:
            # its counters are Python state that a compiled function would update only while
            # tracing: the call runs eagerly (the learning rate it sets is read on every call)
            _tracer["break"]("an LR scheduler's step() inside a compiled function (call it "
                             "outside)")

    def step(self, epoch: int | None = None) -> None:
        self._not_traced()
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            lrs = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class _LRScheduler(LRScheduler):
    """The old name, kept by PyTorch for code that subclasses it."""


def format_param(name: str, optimizer: Optimizer, param) -> list:
    """One value per parameter group: a list or tuple as given (one per group), else repeated."""
    n = len(optimizer.param_groups)
    if isinstance(param, (list, tuple)):
        if len(param) != n:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(param)} values, param_groups has {n}.")
        return list(param)
    return [param] * n


def lambdas_state(fns: list) -> list:
    """The state of lr_lambdas (or a scale_fn): functions and lambdas are not state (they
    cannot be saved), a callable object's attributes are."""
    return [None if isinstance(f, types.FunctionType) else dict(f.__dict__) for f in fns]


def cycle_momentum_setup(sched, optimizer: Optimizer, base_momentum, max_momentum,
                         last_epoch: int) -> tuple[list, list]:
    """CyclicLR's and OneCycleLR's cycle_momentum: the momentum (SGD, RMSprop) or beta1
    (Adam) of each group cycles inversely to its learning rate, starting at max_momentum.
    Returns the base and max momentums."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` "
                         "option enabled")
    sched.use_beta1 = "betas" in optimizer.defaults
    maxs = format_param("max_momentum", optimizer, max_momentum)
    bases = format_param("base_momentum", optimizer, base_momentum)
    if last_epoch == -1:
        for hi, lo, group in zip(maxs, bases, optimizer.param_groups):
            set_momentum(sched, group, hi)
            group["max_momentum"] = hi
            group["base_momentum"] = lo
    return bases, maxs


def set_momentum(sched, group: dict, momentum: float) -> None:
    if sched.use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum
