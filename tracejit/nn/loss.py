"""Loss functions (also exported by `nn.functional`) and their Module forms, as PyTorch's.

Classification losses work on log-probabilities from `log_softmax`, which subtracts the
(detached) row maximum, so large logits neither overflow nor lose the gradient. Reductions and
the weighting/ignore_index/label_smoothing rules follow PyTorch's definitions exactly, e.g.
'mean' with class weights divides by the sum of the weights of the counted targets.
"""
from __future__ import annotations

import math
import warnings

from ..movement import _checked_here, out_of_range
from ..ops import dtypes as D
from ..tensor import Tensor
from .module import Module


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _same_size(input: Tensor, target: Tensor, name: str) -> None:
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due to "
                      f"broadcasting. Please ensure they have the same size.", stacklevel=3)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_reduction(reduction)
    _same_size(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_reduction(reduction)
    _same_size(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (huber_loss / beta)."""
    _check_reduction(reduction)
    _same_size(input, target, "smooth_l1_loss")
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = (input - target).abs()
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(d.where(d >= beta, d * d * (0.5 / beta)) - (d >= beta).to(d.dtype) *
                   (0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); `weight` (input's shape)
    scales each element before the reduction, as torch's."""
    _check_reduction(reduction)
    _same_size(input, target, "huber_loss")
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    d = (input - target).abs()
    # both branches are finite everywhere, so the unselected one's gradient is a clean 0
    loss = (d * d * 0.5).where(d < delta, (d - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# torch's names of the scalar types, as its messages print them
_TORCH_NAMES = {D.bool_: "Bool", D.uint8: "Byte", D.int8: "Char", D.int16: "Short",
                D.int32: "Int", D.int64: "Long", D.float16: "Half", D.float32: "Float",
                D.float64: "Double"}


def _check_target_dtype(target: Tensor) -> None:
    if target.dtype not in (D.int64, D.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{_TORCH_NAMES.get(target.dtype, target.dtype.name)} (class indices "
                           f"are int64 or uint8; class probabilities are floating point and of "
                           f"the input's shape)")


def _class_dim(input: Tensor) -> int:
    return 0 if input.ndim == 1 else 1


def _bshape(input: Tensor) -> tuple:
    """Shape that broadcasts a per-class vector against input's class dim."""
    shape = [1] * input.ndim
    shape[_class_dim(input)] = input.shape[_class_dim(input)]
    return tuple(shape)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-input[n, target[n]] * weight[target[n]], skipping targets equal to ignore_index."""
    _check_reduction(reduction)
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    cd = _class_dim(input)
    want = tuple(input.shape[:cd]) + tuple(input.shape[cd + 1:])
    wrong_shape = tuple(target.shape) != want
    if wrong_shape and input.ndim <= 2 and target.ndim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if wrong_shape and input.ndim >= 2 and target.ndim >= 1 and \
            target.shape[0] != input.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0]}).")
    _check_target_dtype(target)     # (after the batch size check, as torch)
    target = target.long()          # (a uint8 target indexes; as a mask it would select)
    if wrong_shape:
        raise RuntimeError(f"nll_loss: expected target of shape {list(want)} for input of shape "
                           f"{list(input.shape)}, got {list(target.shape)}")
    c = input.shape[cd]
    if weight is not None and tuple(weight.shape) != (c,):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.shape)}")
    bad = out_of_range(target, c, skip=ignore_index)
    if bad is not None:
        raise IndexError(f"Target {bad} is out of bounds.")
    valid = target != ignore_index
    safe = target.where(valid, 0)   # ignored targets may be out of range (-100)
    picked = input.gather(cd, safe.unsqueeze(cd)).squeeze(cd)
    w = valid.to(input.dtype)
    if weight is not None:
        w = w * weight.to(input.dtype)[safe]
    # a select, not only the product with w: when every target is ignored the mean's
    # gradient is 1/0 = inf, and inf * 0 would make the input's gradient nan (torch: 0)
    loss = (-picked * w).where(valid, 0.0)
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce(loss, reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over the class dim (1, or 0 for unbatched input) then NLL; `target` holds
    class indices (integer) or class probabilities (float, same shape as input)."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    cd = _class_dim(input)
    logp = input.log_softmax(cd)
    c = input.shape[cd]
    wb = None if weight is None else weight.to(input.dtype).reshape(_bshape(input))
    # class probabilities: a floating target of the input's shape (torch's test); any other
    # target holds class indices, and nll_loss refuses a floating one
    if target.dtype.is_floating_point and tuple(target.shape) == tuple(input.shape):
        if label_smoothing > 0.0:
            target = target * (1.0 - label_smoothing) + label_smoothing / c
        terms = logp * target if wb is None else logp * target * wb
        if reduction == "none":
            return -terms.sum(cd)
        if reduction == "sum":
            return -terms.sum()
        return -terms.sum() / float(input.numel() // c) if input.numel() else \
            -terms.sum() * math.nan
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    valid = target != ignore_index
    smooth = -(logp if wb is None else logp * wb).sum(cd)
    smooth = smooth.where(valid, 0.0)
    if reduction == "mean":
        if weight is None:
            smooth = smooth.sum() / valid.to(input.dtype).sum()
        else:
            wt = weight.to(input.dtype)[target.long().where(valid, 0)].where(valid, 0.0)
            smooth = smooth.sum() / wt.sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / c)


def _clamped_log(x: Tensor) -> Tensor:
    # log(0) = -inf becomes -100; the where keeps the gradient at 0 finite (0, not nan)
    pos = x > 0
    return x.where(pos, 1.0).log().where(pos, -100.0).clamp(min=-100.0)


def _check_unit_interval(t: Tensor, what: str) -> None:
    """torch's value check, made where the values are on the host (eager CPU, as nll_loss's
    range check): a traced tensor is not checked (no graph break for a check), nor a CUDA one
    (no device sync)."""
    if _checked_here(t) and t._data.size:
        v = t._data
        if not ((v >= 0) & (v <= 1)).all():        # (NaN fails both: refused, as torch)
            raise RuntimeError(f"all elements of {what} should be between 0 and 1")


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does."""
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         f"size.")
    _check_unit_interval(input, "input")
    _check_unit_interval(target, "target")
    x = input.detach()
    loss = -(target * _clamped_log(x) + (1.0 - target) * _clamped_log(1.0 - x))
    # the input's gradient as torch's: (x - t) / max(x (1 - x), 1e-12), finite at 0 and 1
    # where the clamped logs have none
    slope = (x - target.detach()) / (x * (1.0 - x)).clamp(min=1e-12)
    loss = loss + (input - x) * slope
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """(1 - t) x + (1 + (pw - 1) t) softplus(-x): the logit form, stable for any |x|."""
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    sp = (-input).softplus()
    if pos_weight is not None:
        loss = (1.0 - target) * input + ((pos_weight - 1.0) * target + 1.0) * sp
    else:
        loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """target * (log(target) - input) (input holds log-probabilities), 0 where target is 0
    (and input finite); with log_target, exp(target) * (target - input). 'batchmean' divides
    the sum by the batch size (the KL divergence itself); 'mean' divides by the number of
    elements, and warns, as torch does."""
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # torch's xlogy(t, t) - t * input: t log t is 0 at t = 0 (whatever the input there,
        # as long as t * input is: -inf or nan input gives nan, as torch) and nan below 0
        nz = target != 0
        loss = (target * target.where(nz, 1.0).log()).where(nz, 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / float(input.shape[0]) if input.ndim else loss.sum()
    return _reduce(loss, reduction)


# --- modules ---


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)   # a buffer, so it is in state_dict as in torch


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, self.reduction, self.delta)


class KLDivLoss(Module):
    """kl_div as a module; reduction may also be 'batchmean' (the divergence per sample)."""

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, self.reduction, self.log_target)


class NLLLoss(_WeightedLoss):
    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                             self.label_smoothing)


class BCELoss(_WeightedLoss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                self.pos_weight)
