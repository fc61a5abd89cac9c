"""`tracejit.cuda` (`tj.cuda.is_available()`, `device_count()`, `synchronize()`) and the bridge
between Tensors and the CUDA backend.

A CUDA tensor's `_data` is a `codegen.cuda.array.CudaArray`. This module is the only eager-layer
code that touches the backend, and it imports it (and numba) on first use only, so the CPU path
never loads the CUDA stack. When CUDA cannot be used, `require()` says why (numba-cuda missing,
no NVIDIA driver, no device, no NVVM) and how to go on (device='cpu', or Numba's CUDA simulator
with NUMBA_ENABLE_CUDASIM=1 to run CUDA code slowly on the CPU). Moving a tensor between devices
(`to_device`) is recorded for autograd like PyTorch's `ToCopyBackward0`.
"""
from __future__ import annotations

from . import autograd as ag
from .ops.base import Op

_state: dict = {"backend": None, "why": None}


def _why_not() -> str | None:
    """None when CUDA works here, else the reason it does not."""
    try:
        from numba import config, cuda
    except ImportError as e:
        return f"numba-cuda is not installed ({e}); pip install 'tracejit[cuda]'"
    if config.ENABLE_CUDASIM:
        return None
    try:
        from numba.cuda.cudadrv import driver as drv
        from numba.cuda.cudadrv import nvvm
        if not drv.driver.is_available:
            return f"no usable NVIDIA driver ({drv.driver.initialization_error})".strip()
        if not len(cuda.gpus):
            return "the NVIDIA driver sees no CUDA device (check CUDA_VISIBLE_DEVICES)"
        if not nvvm.is_available():
            return "NVVM (the CUDA compiler library) was not found; pip install " \
                   "nvidia-cuda-nvcc-cu12 or install the CUDA toolkit"
    except Exception as e:  # noqa: BLE001 - any driver failure is a reason to report
        return f"CUDA initialisation failed ({type(e).__name__}: {e})"
    return None


def is_available() -> bool:
    """Whether tensors can be put on device='cuda' (a GPU, or Numba's CUDA simulator)."""
    if _state["why"] is None and _state["backend"] is None:
        _state["why"] = _why_not() or ""
    return not _state["why"]


def require():
    """The CUDA backend package (codegen/cuda), or a RuntimeError saying why it is unusable."""
    b = _state["backend"]
    if b is not None:
        return b
    if not is_available():
        raise RuntimeError(f"device='cuda' is not available: {_state['why']}. Use "
                           f"device='cpu', or set NUMBA_ENABLE_CUDASIM=1 (before importing "
                           f"tracejit) to run CUDA code on Numba's CPU simulator.")
    from .codegen.cuda import array, eager
    b = _state["backend"] = (array, eager)
    return b


def device_count() -> int:
    if not is_available():
        return 0
    from numba import config, cuda
    return 1 if config.ENABLE_CUDASIM else len(cuda.gpus)


def current_device() -> int:
    return 0


def get_device_name(device=None) -> str:
    require()
    from numba import config, cuda
    if config.ENABLE_CUDASIM:
        return "Numba CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize() -> None:
    """Wait for every kernel launched so far (for timing)."""
    if _state["backend"] is not None:
        from numba import cuda
        cuda.synchronize()
        _state["backend"][0].check_index_errors()


# --- used by tensor.py, methods.py and factories.py ---

def check_device(dev) -> None:
    if dev.type == "cuda":
        require()
        if dev.index not in (None, 0):
            raise RuntimeError(f"CUDA error: invalid device ordinal {dev.index} (tracejit "
                               f"uses one GPU, cuda:0)")


def run(op, datas: list, params: dict):
    return require()[1].run(op, datas, params)


def value(data, what: str):
    """What a Tensor method that needs values gets from a CUDA array: a host copy (item(),
    tolist(), bool(), ...), except numpy conversions, which torch refuses."""
    if what in ("numpy()", "__array__", "__dlpack__", "__dlpack_device__"):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to "
                        "copy the tensor to host memory first.")
    return data.copy_to_host()


def upload(arr):
    return require()[0].from_host(arr)


def full(shape, value, dtype):
    return require()[1].full(tuple(shape), value, dtype)


_TO = Op("to_copy", "movement", 1, infer=lambda xt, device: xt, eager=None,
         vjp=lambda g, out, x, device: (to_device(g, device),), saves=())


def to_device(t, device):
    """t on `device` (a Device or string), differentiable; t itself when already there."""
    from .tensor import Device, Tensor, _tracer
    dev = Device(device)
    src = t.device                          # (a traced value: the trace's device)
    if dev == src:
        return t
    if _tracer["active"]:
        _tracer["break"](f"moving a tensor to {dev} inside a compiled function")
    check_device(dev)
    data = upload(t._data) if dev.type == "cuda" else t._data.copy_to_host()
    out = Tensor._make(data)
    if ag.is_grad_enabled() and t.requires_grad:
        out.requires_grad = True
        out.grad_fn = ag.Node(_TO, {"device": str(src)}, [t], out)
    return out


def select_backend(backend: str | None, datas: list) -> tuple:
    """(backend, to_host) for a compiled function whose tensors (explicit and closed over) hold
    `datas` (their arrays as the call found them): CUDA inputs select the CUDA backend;
    backend='cuda' with CPU inputs runs on the GPU and hands results back to the host."""
    from .tensor import _on_device
    on = any(_on_device(d) for d in datas)
    if not on:
        if backend == "cuda":
            require()
            return "cuda", True
        return backend, False
    if any(not _on_device(d) and d.ndim for d in datas):
        from .codegen.cuda.eager import MIXED
        raise RuntimeError(MIXED)
    if backend not in (None, "cuda"):
        raise RuntimeError(f"tracejit.compile(backend={backend!r}) runs on the CPU but the "
                           f"inputs are on cuda:0; use backend='cuda' (the default for CUDA "
                           f"inputs) or move them with .cpu()")
    return "cuda", False
