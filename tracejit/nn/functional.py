"""`tj.nn.functional`: activations, linear, normalisation, dropout, embedding, one_hot and pad,
plus the convolution/pooling (conv.py) and loss (loss.py) functions re-exported here.

Everything is composed from Tensor ops, so autograd derives the backward and the tracer can
compile it; nothing reads tensor values except the argument checks PyTorch also makes.
"""
from __future__ import annotations

import math
import warnings

from .. import autograd as ag
from ..factories import arange, rand
from ..movement import negatives_out_of_range, out_of_range, same_device
from ..movement import pad  # noqa: F401  (F.pad, as torch.nn.functional.pad)
from ..tensor import Tensor
from .conv import avg_pool2d, conv1d, conv2d, max_pool2d  # noqa: F401
from .loss import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# --- activations ---


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else input.relu()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    # the gradient is 0 at and beyond the bounds (clamp's flows at the bounds), and passes at
    # NaN, as torch's hardtanh backward: the clamped value enters detached
    return _maybe_in_place(input, inplace, lambda x: x.where(
        ~((x <= min_val) | (x >= max_val)), x.clamp(min_val, max_val).detach()))


def _maybe_in_place(input: Tensor, inplace: bool, f) -> Tensor:
    """f(input), or, in place, f(input) written into input. The ops of f save their input for
    the backward, and the write changes it (a version error at backward): while autograd
    records, f reads a copy (torch's in-place kernels save their result instead)."""
    if not inplace:
        return f(input)
    src = input.clone() if input.requires_grad and ag.is_grad_enabled() else input
    return input.copy_(f(src))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, lambda x: x.where(x > 0, x * negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    # expm1 of the clamped input: the unused branch must not overflow to inf (inf * 0 = nan)
    return _maybe_in_place(input, inplace, lambda x: x.where(
        x > 0, x.clamp(max=0.0).expm1() * alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x); approximate='tanh' uses PyTorch's tanh formula."""
    if approximate == "none":
        return input * 0.5 * ((input * _SQRT1_2).erf() + 1.0)
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * _SQRT_2_OVER_PI
        return input * 0.5 * (inner.tanh() + 1.0)
    raise RuntimeError(f"approximate argument must be either none or tanh, got "
                       f"'{approximate}'")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, lambda x: x * x.sigmoid())


def mish(input: Tensor) -> Tensor:
    return input * input.softplus().tanh()


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    if beta == 1.0:
        sp = input.softplus()
    else:
        sp = (input * beta).softplus() / beta
    # PyTorch returns the input itself above the threshold (same value, gradient exactly 1)
    return input.where(input * beta > threshold, sp)


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def logsigmoid(input: Tensor) -> Tensor:
    return -(-input).softplus()


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x - max) / sum(exp(x - max)): the max is detached, so no overflow and the same
    gradient."""
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return input.softmax(dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return input.log_softmax(dim, dtype=dtype)


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim)
    return (-input).softmax(dim, dtype=dtype)


# --- linear ---


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, for any number of leading dimensions."""
    out = input.matmul(weight.t())
    return out if bias is None else out + bias


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor,
             bias: Tensor | None = None) -> Tensor:
    """y_k = x1 A_k x2 + b_k with weight of shape (out, in1, in2)."""
    t = input1.unsqueeze(-2).unsqueeze(-2).matmul(weight)       # (..., out, 1, in2)
    out = t.matmul(input2.unsqueeze(-2).unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return out if bias is None else out + bias


# --- normalisation ---


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the trailing `normalized_shape` dimensions; the
    variance is the biased one, computed from the centred values (two passes, no cancellation)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(shape)
    if tuple(input.shape[input.ndim - n:]) != shape or n > input.ndim:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in shape)}], but got input of size "
                           f"{list(input.shape)}")
    dims = tuple(range(input.ndim - n, input.ndim))
    xc = input - input.mean(dims, keepdim=True)
    out = xc * ((xc * xc).mean(dims, keepdim=True) + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise each sample over groups of channels: the (N, C, *) input viewed as
    (N, num_groups, C / num_groups * prod(*)), with the biased variance of the centred values
    as layer_norm; then a per-channel weight and bias."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.ndim}")
    n, c = input.shape[0], input.shape[1]
    spatial = 1
    for s in input.shape[2:]:
        spatial *= s
    if (n * c // num_groups) * spatial == 1:   # torch's check (it fires in eval mode too)
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {[n * c // num_groups, num_groups] + list(input.shape[2:])}")
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.ndim != 1 or t.shape[0] != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                               f"channels in input, but got {name} of shape {list(t.shape)} "
                               f"and input of shape {list(input.shape)}")
    x = input.reshape(n, num_groups, (c // num_groups) * spatial)
    xc = x - x.mean(-1, keepdim=True)
    out = (xc * ((xc * xc).mean(-1, keepdim=True) + eps).rsqrt()).reshape(input.shape)
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise over every dim but 1 (the channels). In training, batch statistics are used and
    the running ones move towards them (unbiased variance, as PyTorch); otherwise the running
    statistics are used."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or higher input (got {input.ndim}D input)")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
        mean = input.mean(dims, keepdim=True)
        xc = input - mean
        var = (xc * xc).mean(dims, keepdim=True)
        if running_mean is not None or running_var is not None:
            with ag.no_grad():
                if running_mean is not None:
                    running_mean.mul_(1.0 - momentum).add_(
                        mean.detach().reshape(c).to(running_mean.dtype) * momentum)
                if running_var is not None:
                    unbiased = var.detach().reshape(c) * (n / (n - 1))
                    running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.dtype) *
                                                          momentum)
        out = xc * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be given when "
                               "training=False (or pass training=True to use batch statistics)")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    if p in (math.inf, -math.inf):      # torch's norm: the largest (smallest) |x|
        a = input.abs()
        norm = a.amax(dim, keepdim=True) if p > 0 else a.amin(dim, keepdim=True)
        return input / norm.clamp(min=eps)
    if p == 0:                          # the number of nonzeros
        return input / (input != 0).sum(dim, keepdim=True).to(input.dtype).clamp(min=eps)
    # the norm's gradient is 0 at a zero norm, as torch's (not 0 * inf = nan)
    s = (input.abs() ** p).sum(dim, keepdim=True)
    nz = s != 0
    norm = (s.where(nz, 1.0) ** (1.0 / p)).where(nz, 0.0)
    return input / norm.clamp(min=eps)


# --- dropout and embedding ---


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p); identity in eval."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _maybe_in_place(input, inplace, lambda x: x * 0.0)
    keep = (rand(input.shape, device=input.device) < (1.0 - p)).to(input.dtype)
    return _maybe_in_place(input, inplace, lambda x: x * keep * (1.0 / (1.0 - p)))


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of `weight` picked by the integer tensor `input`; rows at `padding_idx` get no
    gradient."""
    if input.dtype.name not in ("int64", "int32"):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.dtype} instead")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding(): max_norm, scale_grad_by_freq and sparse are not "
                                  "supported by tracejit")
    same_device(weight, input, "embedding")
    n = weight.shape[0]
    if out_of_range(input, n) is not None:          # (torch's words)
        raise IndexError("index out of range in self")
    out = weight[negatives_out_of_range(input, n)]
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += weight.shape[0]
        pad_rows = (input == padding_idx).unsqueeze(-1)
        out = out.detach().where(pad_rows, out)
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor with a trailing dimension of size num_classes (max + 1 when -1)."""
    if not tensor.dtype.is_integer:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if tensor._is_symbolic:         # the range check needs the values: eager (graph break)
        tensor._value("one_hot()'s range check")
    if tensor.numel():
        lo, hi = int(tensor.min()), int(tensor.max())
        if lo < 0:
            raise RuntimeError("Class values must be non-negative.")
        if num_classes == -1:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    elif num_classes == -1:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    return (tensor.unsqueeze(-1) == arange(num_classes, device=tensor.device)).long()
