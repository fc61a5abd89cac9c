"""`Parameter`: a leaf Tensor that a Module registers as one of its learnable weights.

As in PyTorch it is a Tensor subclass that requires grad by default. Results of ops on a
Parameter, and its `.grad`, are plain Tensors.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

_tensor_make = Tensor._make.__func__


class Parameter(Tensor):
    """A Tensor that is a module parameter: `nn.Parameter(tj.zeros(3))`."""
    __slots__ = ()

    def __new__(cls, data: Tensor | None = None,  # noqa: PYI034
                requires_grad: bool = True) -> Parameter:
        if data is None:
            arr = np.zeros((0,), np.float32)
        elif isinstance(data, Tensor):
            arr = data._data
        else:
            raise TypeError(f"Parameter(): expected a Tensor as data, got {type(data).__name__}; "
                            f"wrap it first: nn.Parameter(tracejit.tensor(data))")
        p = _tensor_make(cls, arr)  # Tensor._make's slots, with this class
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data=None, requires_grad=True) -> None:  # Tensor.__init__ refuses
        pass

    @classmethod
    def _make(cls, data, requires_grad=False, grad_fn=None, version=None, base=None):
        # the autograd engine builds `.grad` with type(leaf)._make: a gradient is a Tensor
        return Tensor._make(data, requires_grad, grad_fn, version, base)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo) -> Parameter:
        """A new Parameter with a copy of the data and the same requires_grad; `.grad` is not
        copied (torch 2.13's Parameter.__deepcopy__ leaves it None)."""
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor._make(np.array(self._data, copy=True)), self.requires_grad)
        memo[id(self)] = out
        return out


def is_parameter(x) -> bool:
    return isinstance(x, Parameter)
