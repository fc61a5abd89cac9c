"""tracejit: a PyTorch-like eager tensor library on numpy, with a tracing JIT.

`import tracejit as tj` gives PyTorch's tensor API (factories, ops, autograd); `tj.nn`,
`tj.optim` build models; `tj.compile` captures a function into the graph IR and runs it through
a compiled backend.
"""
# ruff: noqa: F401, E402  (this module re-exports the public API)
from . import autograd, methods, movement  # noqa: F401  (attach Tensor methods)
from . import pointwise, rearrange, scans, selection, sorting, tensor_info  # noqa: F401
from . import cuda  # noqa: F401  (tj.cuda.is_available(); loads no CUDA code)
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .factories import (arange, empty, empty_like, eye, from_dlpack, from_numpy, full,
                        full_like, is_tensor, linspace, manual_seed, ones, ones_like, rand,
                        rand_like, randint, randn, randn_like, randperm, seed, tensor, zeros,
                        zeros_like)
from .ops.dtypes import (DType, bool_, float16, float32, float64, int8, int16, int32, int64,
                         uint8)
from .tensor import Device, Size, Tensor
from .tensor_info import finfo, iinfo

__version__ = "0.1.0"

bool = bool_  # noqa: A001  (tracejit.bool, as torch.bool)
float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001
half = float16
dtype = DType
device = Device


def _export_functions():
    g = globals()
    for name, f in methods._functions.items():
        g.setdefault(name, f)


_export_functions()
from .tensor import as_tensor


def get_default_dtype() -> DType:
    return float32


def promote_types(a, b) -> DType:
    from .ops.dtypes import get_dtype, promote_types as p
    return p(get_dtype(a), get_dtype(b))


def result_type(a, b) -> DType:
    from .ops import dtypes as D
    dims, zero, sc = [], [], []
    for x in (a, b):
        if isinstance(x, Tensor):
            (dims if x.ndim else zero).append(x.dtype)
        else:
            sc.append(D.scalar_dtype(x))
    return D.result_type(dims, zero, sc)


from . import linalg, nn, optim, utils
from .jit import compile, disable, explain
from .serialization import load, save
