"""`NUMBA_ENABLE_CUDASIM=1 python -m perf.cuda_census`: what one CUDA training step asks of the
GPU and of the host, measured without a GPU.

On a real GPU the small steps of W1..W4 are bound by the host: each numba launch cost ~45 us of
Python on the H200 host (perf/RESULTS.md), a host<->device copy synchronises, and a fresh
cuMemAlloc is slow. Under Numba's CUDA simulator this counts, per warm step (forward, backward
and, for W2's whole step, the optimizer):
  - launches: kernels started (each numba launch is host time on a GPU);
  - h2d, d2h: host->device and device->host copies (each one synchronises);
  - allocs: device allocations the caching pool could not serve;
and times the step's host work with kernel bodies skipped ("host us"): tracejit's own Python
per step, the part the simulator can measure. "raw us" times the same step with each launch
going through the GPU's launch path up to the driver call: `launch.Raw` packing the arguments
as on a GPU and cuda.core's `ParamHolder` converting them (numba's typing and packing stood in
by `_FakeKernel`). The counts are what tests/test_cuda_census.py holds the backend to.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np


class Census:
    """Counts launches, copies and allocations while active; `run_kernels=False` skips the
    kernel bodies (outputs hold garbage: for timing the host side only)."""

    def __init__(self, run_kernels: bool = True) -> None:
        self.run_kernels = run_kernels
        self.counts = dict.fromkeys(("launches", "h2d", "d2h", "allocs"), 0)

    @contextlib.contextmanager
    def active(self):
        from numba import config, cuda
        if not config.ENABLE_CUDASIM:
            raise RuntimeError("the census runs under Numba's CUDA simulator: set "
                               "NUMBA_ENABLE_CUDASIM=1 before Python starts")
        from numba.cuda.simulator import kernel as K
        from numba.cuda.simulator.cudadrv import devicearray as DA
        c = self.counts
        saved = [(K.FakeCUDAKernel, "__call__"), (DA.FakeCUDAArray, "copy_to_host"),
                 (DA.FakeCUDAArray, "copy_to_device"), (cuda, "to_device"),
                 (cuda, "device_array")]
        orig = [getattr(o, n) for o, n in saved]
        call, to_host, to_dev, upload, alloc = orig

        def launch(kern, *args):
            if kern._device or K._kernel_context:    # a device function called in a kernel
                return call(kern, *args)
            c["launches"] += 1
            return call(kern, *args) if self.run_kernels else None

        def copy_to_host(a, *args, **kw):
            c["d2h"] += 1
            return to_host(a, *args, **kw)

        def copy_to_device(a, ary, *args, **kw):
            c["h2d" if isinstance(ary, np.ndarray) else "launches"] += 1
            return to_dev(a, ary, *args, **kw)

        def to_device(ary, *args, **kw):
            c["h2d"] += 1
            c["allocs"] += 1
            return upload(ary, *args, **kw)

        def device_array(*args, **kw):
            c["allocs"] += 1
            return alloc(*args, **kw)
        for (o, n), f in zip(saved, (launch, copy_to_host, copy_to_device, to_device,
                                     device_array)):
            setattr(o, n, f)
        try:
            yield self
        finally:
            for (o, n), f in zip(saved, orig):
                setattr(o, n, f)


class _FakeKernel:
    """numba's compiled kernel as `launch.Raw.make` sees it, typed from the first call's
    arguments and packing them by numba-cuda 0.30's `_prepare_args` rules (a simulator buffer
    has no device pointer: its id stands in)."""
    extensions = ()
    cooperative = False

    def __init__(self, args) -> None:
        import types as pytypes

        from numba.core import types as T
        from numba.np.numpy_support import from_dtype
        self.argument_types = [T.Array(from_dtype(a.dtype), 1, "C") if hasattr(a, "dtype")
                               and not np.isscalar(a) else T.boolean if isinstance(a, bool)
                               else T.int64 if isinstance(a, int) else T.float64 for a in args]
        self._codelibrary = pytypes.SimpleNamespace(
            get_cufunc=lambda: pytypes.SimpleNamespace(kernel=None))

    def _prepare_args(self, ty, val, stream, retr, out) -> None:
        import ctypes

        from numba.core import types as T
        if isinstance(ty, T.Array):
            out += [0, 0, val.size, val.dtype.itemsize, id(val), val.size, val.dtype.itemsize]
        elif ty == T.int64:
            out.append(ctypes.c_int64(val))
        elif ty == T.float64:
            out.append(ctypes.c_double(val))
        else:
            out.append(val)


@contextlib.contextmanager
def raw_launches():
    """Every launch goes through `launch.Raw` and cuda.core's argument conversion, and stops
    before the driver (the simulator runs nothing)."""
    import types as pytypes

    from cuda.core._kernel_arg_handler import ParamHolder
    from numba.core import types as T

    from tracejit.codegen.cuda import launch as L
    module = pytypes.SimpleNamespace(
        types=T, CUDA_CORE_GE_1_0=True, LaunchConfig=lambda **kw: None,
        launch=lambda stream, config, handle, *args: ParamHolder(args))
    cfg = pytypes.SimpleNamespace(griddim=(1, 1, 1), blockdim=(1, 1, 1), stream=0, sharedmem=0)
    raws: dict = {}
    plain = L.Launch.run

    def call(self, args):
        raw = raws.get(id(self))
        if raw is None:
            raw = raws[id(self)] = L.Raw.make(_FakeKernel(args), cfg, args, module)
            if raw is None:
                raise RuntimeError("Raw.make refused a simulator kernel's arguments")
            raws[id(self), "keep"] = self
        raw.go(*raw.pack(args))
    L.Launch.run = call
    try:
        yield
    finally:
        L.Launch.run = plain


SIZES = {"W1": 64, "W2": (8, [12, 10, 10, 4]), "W3": (4, 16), "W4": (8, 10)}


def make_step(wid: str, mode: str, device: str = "cuda"):
    """A zero-argument CUDA step of workload `wid` ("W2 whole" for the compiled training step),
    `mode` "eager" or "compiled", with its tensors built; run it twice to warm it up."""
    import tracejit as tj
    from perf.gpu_check import workload
    name = wid.split()[0]
    fn, arrays, rg, _ = workload(name, "tiny", sizes=SIZES)
    ins = [tj.tensor(a, device=device, requires_grad=r) for a, r in zip(arrays, rg)]
    params = [t for t, r in zip(ins, rg) if r]
    if wid.endswith("whole"):
        # the training step closes over the parameters its optimizer updates, as a model's
        # step does (passed as arguments, their .grad would break the graph)
        data, weights = ins[:2], ins[2:]
        opt = tj.optim.SGD(weights, lr=0.01, momentum=0.9)

        def train(x, t):
            loss = fn(x, t, *weights)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        f = tj.compile(train) if mode == "compiled" else train
        return lambda: f(*data)
    f = tj.compile(fn) if mode == "compiled" else fn

    def step():
        for t in params:
            t.grad = None
        f(*ins).backward()
    return step


def census(wid: str, mode: str, reps: int = 5) -> dict:
    """Counts per warm step, and the host microseconds per step with kernels skipped."""
    import tracejit as tj
    step = make_step(wid, mode)
    for _ in range(2):
        step()
    tj.cuda.synchronize()
    c = Census()
    with c.active():
        step()
        tj.cuda.synchronize()
    out = dict(c.counts)
    quiet = Census(run_kernels=False)
    with quiet.active():
        out["host_us"] = _median_us(step, reps)
    with quiet.active(), raw_launches():
        out["raw_us"] = _median_us(step, reps)
    return out


def _median_us(step, reps: int) -> float:
    """Median microseconds of `step` after one untimed call."""
    step()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


WORKLOADS = ("W1", "W2", "W2 whole", "W3", "W4")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    print(f"{'workload':10} {'mode':9} {'launches':>8} {'h2d':>4} {'d2h':>4} {'allocs':>6} "
          f"{'host us':>8} {'raw us':>7}")
    for wid in args.workloads.split(","):
        modes = ("compiled",) if wid.endswith("whole") else ("eager", "compiled")
        for mode in modes:
            r = census(wid, mode)
            print(f"{wid:10} {mode:9} {r['launches']:8d} {r['h2d']:4d} {r['d2h']:4d} "
                  f"{r['allocs']:6d} {r['host_us']:8.0f} {r['raw_us']:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
