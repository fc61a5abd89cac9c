"""Recurrent layers: RNN, LSTM, GRU and their single-step cells, as PyTorch's.

Parameter names and shapes are PyTorch's (`weight_ih_l0`, `bias_hh_l1_reverse`, gates stacked
in the order i, f, g, o for LSTM and r, z, n for GRU), all initialised U(-1/sqrt(H), 1/sqrt(H)).
The time loop unrolls into plain Tensor ops (two matmuls and the gate arithmetic per step), so
it traces; steps pass Tensors between layers directly rather than slicing stacked sequences.
"""
from __future__ import annotations

import math
import warnings

from ..factories import empty, zeros
from ..movement import cat, stack
from ..ops import dtypes as D
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _step(mode: str, gi: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor,
          b_hh: Tensor | None):
    """One time step: gi is the input projection (bias included), returns (h, c)."""
    gh = h.matmul(w_hh.t())
    if b_hh is not None:
        gh = gh + b_hh
    if mode == "RNN_TANH":
        return (gi + gh).tanh(), None
    if mode == "RNN_RELU":
        return (gi + gh).relu(), None
    if mode == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c
    ir, iz, in_ = gi.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
    n = (in_ + r * hn).tanh()
    return n + z * (h - n), None


class RNNBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM proj_size is not supported by tracejit")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so "
                          f"non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be positive integers")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        dt = D.get_dtype(dtype) if dtype is not None else D.float32
        g = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * dirs
            for sfx in ("", "_reverse")[:dirs]:
                shapes = [("weight_ih", (g, in_size)), ("weight_hh", (g, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (g,)), ("bias_hh", (g,))]
                for name, shape in shapes:
                    full = f"{name}_l{layer}{sfx}"
                    setattr(self, full, Parameter(empty(shape, dtype=dt)))
                    self._flat_weights_names.append(full)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op (PyTorch compacts cuDNN weights here)."""

    @property
    def all_weights(self) -> list:
        n = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, w) for w in names[i:i + n]] for i in range(0, len(names), n)]

    def _weights(self, layer: int, direction: int):
        sfx = "_reverse" if direction else ""
        def get(n):
            return getattr(self, f"{n}_l{layer}{sfx}") if (
                self.bias or n.startswith("weight")) else None
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_hidden(self, h: Tensor, expected: tuple, what: str = "hidden") -> None:
        if tuple(h.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {list(h.shape)}")

    def forward(self, input: Tensor, hx=None):
        lstm = self.mode == "LSTM"
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                             f"{input.ndim}D tensor instead")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)                               # (T, N, I)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {x.shape[-1]}")
        steps, n = x.shape[0], x.shape[1]
        dirs = 2 if self.bidirectional else 1
        hshape = (self.num_layers * dirs, n, self.hidden_size)
        if hx is None:
            h0 = zeros(hshape, dtype=x.dtype, device=x.device)
            c0 = zeros(hshape, dtype=x.dtype, device=x.device) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if lstm else None
            self._check_hidden(h0, hshape)
            if lstm:
                self._check_hidden(c0, hshape, "cell")
        # per-step inputs: layer 0 slices the input once per step; later layers read the
        # previous layer's step outputs directly (no stack-then-slice, whose backward would
        # materialise a full-size gradient for every step)
        inputs = [x[t] for t in range(steps)]
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                k = layer * dirs + d
                h, c = h0[k], (c0[k] if lstm else None)
                seq = [None] * steps
                for t in (range(steps - 1, -1, -1) if d else range(steps)):
                    gi = F.linear(inputs[t], w_ih, b_ih)
                    h, c = _step(self.mode, gi, h, c, w_hh, b_hh)
                    seq[t] = h
                outs.append(seq)
                h_n.append(h)
                c_n.append(c)
            inputs = outs[0] if dirs == 1 else [cat([f, b], -1) for f, b in zip(*outs)]
            if self.dropout and self.training and layer < self.num_layers - 1:
                inputs = [F.dropout(v, self.dropout, True) for v in inputs]
        out = stack(inputs, 0)
        hn = stack(h_n, 0)
        cn = stack(c_n, 0) if lstm else None
        if not batched:
            out, hn = out.squeeze(1), hn.squeeze(1)
            cn = cn.squeeze(1) if lstm else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return (out, (hn, cn)) if lstm else (out, hn)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory; forward returns output, (h_n, c_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype=dtype)


class GRU(RNNBase):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype)


class _CellBase(Module):
    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dt = D.get_dtype(dtype) if dtype is not None else D.float32
        g = _GATES[self.mode] * hidden_size
        self.weight_ih = Parameter(empty(g, input_size, dtype=dt))
        self.weight_hh = Parameter(empty(g, hidden_size, dtype=dt))
        if bias:
            self.bias_ih = Parameter(empty(g, dtype=dt))
            self.bias_hh = Parameter(empty(g, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _prepare(self, input: Tensor, hx):
        if input.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got "
                             f"{input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            return x, batched, None
        hs = hx if isinstance(hx, tuple) else (hx,)
        hs = tuple(h if batched else h.unsqueeze(0) for h in hs)
        for h in hs:
            if tuple(h.shape) != (x.shape[0], self.hidden_size):
                raise RuntimeError(f"Expected hidden size {(x.shape[0], self.hidden_size)}, "
                                   f"got {list(h.shape)}")
        return x, batched, hs

    def _run(self, input: Tensor, hx, n_state: int):
        x, batched, hs = self._prepare(input, hx)
        if hs is None:
            hs = tuple(zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
                       for _ in range(n_state))
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        h, c = _step(self.mode, gi, hs[0], hs[1] if n_state == 2 else None, self.weight_hh,
                     self.bias_hh)
        if not batched:
            h = h.squeeze(0)
            c = c.squeeze(0) if c is not None else None
        return h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        return s


class RNNCell(_CellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.__dict__["nonlinearity"] = nonlinearity
        self.__dict__["mode"] = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(input, hx, 1)[0]

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity}" if self.nonlinearity != "tanh" else "")


class LSTMCell(_CellBase):
    mode = "LSTM"

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        return self._run(input, hx, 2)


class GRUCell(_CellBase):
    mode = "GRU"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(input, hx, 1)[0]
