"""1-D and 2-D convolution and 2-D pooling (functions and modules), built from movement ops and
matmul; a 1-D convolution is a 2-D one over a height-1 image.

The input is padded, then every kernel offset (i, j) contributes one strided slice of shape
(N, C, H_out, W_out) (im2col by slicing); convolution stacks the slices and multiplies them with
the flattened weight, pooling reduces over them. Every step is a Tensor op, so autograd derives
the backward and the tracer can compile the same code.
"""
from __future__ import annotations

import math

import numpy as np

from ..factories import arange, tensor
from ..movement import pad, stack
from ..ops import dtypes as D
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter


# the smallest value each argument may take (torch raises RuntimeError below it)
_LOWEST = {"stride": 1, "dilation": 1, "kernel_size": 1, "padding": 0}


def _ntuple(v, n: int, name: str = "value") -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise RuntimeError(f"{name} must be an int or a tuple of {n} ints, got {v}")
        out = tuple(int(x) for x in v)
    else:
        out = (int(v),) * n
    low = _LOWEST.get(name)
    if low is not None and min(out) < low:
        raise RuntimeError(f"{name} must be {'positive' if low else 'non-negative'}, got {v}")
    return out


def _pair(v, name: str = "value") -> tuple[int, int]:
    return _ntuple(v, 2, name)


def _windows(x: Tensor, k, s, d, out) -> list:
    """The kh*kw strided slices of x (N, C, H, W), in kernel row-major order."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = k, s, d, out
    wins = []
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dh, j * dw
            wins.append(x[:, :, h0:h0 + sh * (ho - 1) + 1:sh, w0:w0 + sw * (wo - 1) + 1:sw])
    return wins


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or the left padding
    return out


def _too_small(x: Tensor, ho: int, wo: int) -> RuntimeError:
    _, c, h, w = x.shape
    return RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                        f"({c}x{ho}x{wo}). Output size is too small")


def _batched(input: Tensor, name: str) -> tuple[Tensor, bool]:
    if input.ndim == 4:
        return input, True
    if input.ndim == 3:
        return input.unsqueeze(0), False
    raise RuntimeError(f"{name}: Expected 3D (unbatched) or 4D (batched) input, but got input "
                       f"of size: {list(input.shape)}")


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """Cross-correlation of (N, C, H, W) input with (O, C/groups, kh, kw) weight."""
    x, batched = _batched(input, "conv2d")
    n, c = x.shape[:2]
    o, cg, kh, kw = weight.shape
    if cg * groups != c:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(x.shape)} to have {cg * groups} channels, but "
                           f"got {c} channels instead")
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            th, tw = d[0] * (kh - 1), d[1] * (kw - 1)
            pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        else:
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             f"{{'valid', 'same'}}")
    else:
        ph, pw = _pair(padding, "padding")
        pads = (pw, pw, ph, ph)
    if any(pads):
        x = pad(x, pads)
    hp, wp = x.shape[2], x.shape[3]
    ho, wo = _out_size(hp, kh, s[0], 0, d[0]), _out_size(wp, kw, s[1], 0, d[1])
    if ho <= 0 or wo <= 0:
        raise _too_small(x, ho, wo)
    if (kh, kw) == (1, 1):
        cols = _windows(x, (1, 1), s, d, (ho, wo))[0].reshape(n, groups, cg, ho * wo)
    else:
        cols = stack(_windows(x, (kh, kw), s, d, (ho, wo)), 2)   # (N, C, K, ho, wo)
        cols = cols.reshape(n, groups, cg * kh * kw, ho * wo)
    out = weight.reshape(groups, o // groups, cg * kh * kw).matmul(cols)   # (N, G, O/G, L)
    out = out.reshape(n, o, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return out if batched else out.squeeze(0)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """conv2d over a height-1 image: (N, C, L) or (C, L) input, (O, C/groups, k) weight."""
    def one(v):
        return v[0] if isinstance(v, (tuple, list)) else v
    # checked here, so that the errors name the 1-D shapes, as torch's
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to conv1d, but got "
                           f"input of size: {list(input.shape)}")
    if weight.ndim != 3:
        raise RuntimeError(f"Expected {weight.ndim}-dimensional input for {weight.ndim}-"
                           f"dimensional weight {list(weight.shape)}, but got 3-dimensional "
                           f"input of size {list(input.shape)} instead")
    c = input.shape[-2]
    if weight.shape[1] * groups != c:
        shape = list(input.shape) if input.ndim == 3 else [1] + list(input.shape)
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{shape} to have {weight.shape[1] * groups} "
                           f"channels, but got {c} channels instead")
    pad_arg = padding if isinstance(padding, str) else (0, one(padding))
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, one(stride)), pad_arg,
                 (1, one(dilation)), groups)
    return out.squeeze(-2)


def _pool_args(input, kernel_size, stride, padding, dilation, ceil_mode, name):
    x, batched = _batched(input, name)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else \
        _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    for pi, ki, di in zip(p, k, d):
        if pi > (di * (ki - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pi}, kernel_size={ki} and dilation={di}")
    h, w = x.shape[2], x.shape[3]
    ho = _out_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    wo = _out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if ho <= 0 or wo <= 0:
        raise _too_small(x, ho, wo)
    # ceil_mode may need padding beyond the right edge for the last window's slice to exist
    eh = max(0, (ho - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (h + 2 * p[0]))
    ew = max(0, (wo - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (w + 2 * p[1]))
    return x, batched, k, s, p, d, (ho, wo), (p[1], p[1] + ew, p[0], p[0] + eh)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each window. The gradient goes to the first maximum of a window (PyTorch's
    choice), which a one-hot select of the argmax gives without any scatter."""
    x, batched, k, s, p, d, out, pads = _pool_args(input, kernel_size, stride, padding,
                                                   dilation, ceil_mode, "max_pool2d")
    w = x.shape[3]
    if x.dtype.is_bool:
        raise NotImplementedError("max_pool2d() is not implemented for bool tensors")
    if any(pads):           # padding loses every max: -inf, or the dtype's smallest integer
        x = pad(x, pads, value=-math.inf if x.dtype.is_floating_point else
                int(np.iinfo(x.dtype.np).min))
    nk = k[0] * k[1]
    wins = stack(_windows(x, k, s, d, out), 2)                      # (N, C, K, ho, wo)
    dev = input.device          # helper index tensors live where the input does
    first = wins.argmax(2, keepdim=True) == arange(nk, device=dev).reshape(1, 1, nk, 1, 1)
    values = wins.where(first, 0).sum(2)       # (an integer input stays integer)
    if values.dtype is not x.dtype:
        values = values.to(x.dtype)
    if not batched:
        values = values.squeeze(0)
    if not return_indices:
        return values
    # flat index h * W + w of each window element in the unpadded input
    pos = []
    for i in range(k[0]):
        for j in range(k[1]):
            ph = arange(out[0], device=dev).reshape(out[0], 1) * s[0] + (i * d[0] - p[0])
            pw = arange(out[1], device=dev).reshape(1, out[1]) * s[1] + (j * d[1] - p[1])
            pos.append(ph * w + pw)
    idx = stack(pos, 0).reshape(1, 1, nk, out[0], out[1]).where(first, 0).sum(2)
    return values, (idx if batched else idx.squeeze(0))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over each window, with PyTorch's divisor rules for padding and ceil_mode."""
    x, batched, k, s, p, _, out, pads = _pool_args(input, kernel_size, stride, padding, 1,
                                                   ceil_mode, "avg_pool2d")
    h, w = x.shape[2], x.shape[3]
    if any(pads):
        x = pad(x, pads)
    wins = _windows(x, k, s, (1, 1), out)
    total = wins[0]
    for win in wins[1:]:
        total = total + win
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    if divisor_override:
        res = total / float(divisor_override)
    else:
        dh = _divisors(h, k[0], s[0], p[0], out[0], count_include_pad)
        dw = _divisors(w, k[1], s[1], p[1], out[1], count_include_pad)
        if len(set(dh)) == 1 and len(set(dw)) == 1:
            res = total / float(dh[0] * dw[0])
        else:
            div = tensor(dh, dtype=D.float64, device=input.device).reshape(out[0], 1) * \
                tensor(dw, dtype=D.float64, device=input.device)
            res = total / div.to(total.dtype)
    if not input.dtype.is_floating_point:
        res = res.to(input.dtype)               # torch: an integer mean truncates
    return res if batched else res.squeeze(0)


def _divisors(size: int, k: int, s: int, p: int, n: int, include_pad: bool) -> list:
    out = []
    for o in range(n):
        start = o * s - p
        end = min(start + k, size + p)
        span = end - start
        start, end = max(start, 0), min(end, size)
        out.append(span if include_pad else end - start)
    return out


class _ConvNd(Module):
    """The convolution layers' shared parameters, default init and repr (`_n` dimensions)."""
    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}: padding_mode '{padding_mode}' is "
                                      f"not supported by tracejit (only 'zeros')")
        n = self._n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _ntuple(kernel_size, n), _ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n)
        self.dilation, self.padding_mode = _ntuple(dilation, n), padding_mode
        dt = D.get_dtype(dtype) if dtype is not None else D.float32
        from ..factories import empty
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size,
                                      dtype=dt))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init._reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"        # (a string unquoted: padding=same)
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) or (C, L) input; weight (out, in/groups, k)."""
    _n = 1

    def forward(self, input: Tensor) -> Tensor:
        return conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) or (C, H, W) input; weight (out, in/groups, kh, kw)."""
    _n = 2

    def forward(self, input: Tensor) -> Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
