"""Launching a generated kernel with as little host work per call as numba allows.

A numba launch through the dispatcher cost ~45 us of Python per kernel on the H200 host
(perf/RESULTS.md), more than the small kernels of a training step take on the GPU. The
argument types of one of our kernel variants never change, so after the first call (which
compiles the kernel or loads it from the disk cache):
  - `Launch` calls numba's compiled `_Kernel.launch` directly, skipping argument typing and
    dispatch;
  - `Raw` goes one step further and does per call only what `_Kernel.launch` does that depends
    on the call: it packs the arguments as numba's `_prepare_args` would (an array's seven
    fields are computed by numba once per buffer and kept on the buffer, which never changes)
    and calls the same cuda.core `launch` numba calls, with the kernel handle, launch
    configuration and stream made once.
`Raw` is used only when, for the first call, its packing gives the driver the same parameter
bytes as numba's own `_prepare_args` (or, without cuda.core's `ParamHolder` to ask, the same
fields, type and value): another numba-cuda version falls back to `_Kernel.launch`.
64-bit integer and float64 scalars are packed as Python ints and floats, not ctypes objects:
cuda.core passes those as 8-byte values on a fast path, while each ctypes argument went through
~20 isinstance checks (0.3 us each on this VM, ~2.5 us per kernel of 8 offsets; perf/RESULTS.md).
TRACEJIT_CUDA_LAUNCH=numba turns `Raw` off (perf/gpu_check.py times both).
"""
from __future__ import annotations

import ctypes
import functools
import os

from . import array as A


class Launch:
    """numba kernel `fn` configured as `fn[grid, block]`, launched by the fastest path that
    gives numba's own result. (The simulator configures a kernel by changing it, so there
    every call configures it again.)"""
    __slots__ = ("cfg", "kernel", "raw", "fn", "grid", "block")

    def __init__(self, fn, grid, block) -> None:
        self.fn, self.grid, self.block = fn, grid, block
        self.cfg = None if A.SIM else fn[grid, block]
        self.kernel = self.raw = False if A.SIM else None

    def __call__(self, *args) -> None:
        self.run(args)

    def run(self, args) -> None:
        """Launch with the arguments in a sequence (a kernel runner's list: no repacking)."""
        if A.SIM:
            self.fn[self.grid, self.block](*args)
            return
        raw = self.raw
        if raw:
            try:
                raw.go(*raw.pack(args))
                return
            except (AttributeError, TypeError):     # raised while packing, before launching
                self.raw = raw = False
        kernel, cfg = self.kernel, self.cfg
        if kernel:
            try:
                kernel.launch(args, cfg.griddim, cfg.blockdim, cfg.stream, cfg.sharedmem)
            except (AttributeError, TypeError):     # raised before anything was launched
                self.kernel = self.raw = False
                cfg(*args)
                return
        else:
            cfg(*args)
            if kernel is None:
                kernel = self.kernel = compiled_kernel(cfg)
        if raw is None and kernel:
            self.raw = Raw.make(kernel, cfg, args) or False


_launches: dict = {}


def launcher(fn, grid, block) -> Launch:
    """The `Launch` of fn[grid, block], kept (kernels outside the fused path: matmul, index)."""
    key = (fn, grid, block)
    la = _launches.get(key)
    if la is None:
        if len(_launches) > 1024:        # eager kernels meet many shapes
            _launches.clear()
        la = _launches[key] = Launch(fn, grid, block)
    return la


def compiled_kernel(cfg):
    """numba's compiled `_Kernel` behind a configured dispatcher that has exactly one, when it
    can be launched directly (not under the simulator, no debug, no launch-config callbacks)."""
    d = getattr(cfg, "dispatcher", None)
    over = getattr(d, "overloads", None)
    if A.SIM or not over or len(over) != 1 or getattr(d, "_launch_config_sensitive", False) \
            or getattr(cfg, "pre_launch_callbacks", None):
        return False
    k = next(iter(over.values()))
    ok = all(hasattr(cfg, n) for n in ("griddim", "blockdim", "stream", "sharedmem"))
    return k if ok and hasattr(k, "launch") and not getattr(k, "debug", False) else False


def _same(v):
    return v


class Raw:
    """One kernel variant's launch with the arguments packed here (see the module docstring)."""
    __slots__ = ("conv", "types", "prepare", "stream", "go", "fast")

    def __init__(self, conv, types, prepare, stream, go) -> None:
        self.conv, self.types, self.prepare, self.stream = conv, types, prepare, stream
        self.go = go                # (*kernel args) -> None: cuda.core's launch, its stream,
        #                             configuration and kernel bound (a C-level partial)
        self.fast = _packer(conv)

    def pack(self, args) -> list:
        """The kernel parameters of `args`: one generated expression when every buffer's
        fields are kept already (3.0 -> ~1 us per W4 kernel on the H200 host), else the loop,
        which keeps them."""
        try:
            return self.fast(args)
        except AttributeError:
            return self._pack(args)

    def _pack(self, args) -> list:
        out: list = []
        for c, ty, v in zip(self.conv, self.types, args):
            if c is not None:
                out.append(c(v))
                continue
            try:
                out += v._tracejit_kargs
            except AttributeError:
                out += self._array(ty, v)
        return out

    def _array(self, ty, buf) -> list:
        """numba's packing of one device buffer, kept on the buffer (its pointer, size, shape
        and strides never change)."""
        got, retr = [], []
        self.prepare(ty, buf, self.stream, retr, got)
        if retr:       # a host array (a copy to make): not ours to cache
            raise TypeError("a host array where a device buffer was expected")
        buf._tracejit_kargs = got
        return got

    def __call__(self, args) -> None:
        self.go(*self.pack(args))

    @classmethod
    def make(cls, kernel, cfg, args, dispatcher_module=None):
        """The raw launch of `kernel` under `cfg`, or None when it would not pack `args`
        exactly as numba does (or numba's internals differ from what this expects)."""
        if os.environ.get("TRACEJIT_CUDA_LAUNCH", "") == "numba":
            return None
        try:
            if dispatcher_module is None:
                from numba.cuda import dispatcher as dispatcher_module
            D = dispatcher_module
            if getattr(kernel, "extensions", None) or getattr(kernel, "cooperative", False):
                return None
            T = D.types
            by_bytes = param_bytes([]) is not None
            conv = []
            for ty in kernel.argument_types:
                if isinstance(ty, T.Array):
                    conv.append(None)
                elif by_bytes and ty in (T.int64, T.float64):
                    conv.append(int if ty == T.int64 else float)
                elif isinstance(ty, T.Integer):
                    conv.append(getattr(ctypes, f"c_{ty}"))
                elif ty == T.float64:
                    conv.append(ctypes.c_double)
                elif ty == T.float32:
                    conv.append(ctypes.c_float)
                elif ty == T.boolean:
                    conv.append(_same)
                else:
                    return None
            want, retr = [], []
            for ty, v in zip(kernel.argument_types, args):
                kernel._prepare_args(ty, v, cfg.stream, retr, want)
            if retr:
                return None
            if D.CUDA_CORE_GE_1_0:
                config = D.LaunchConfig(grid=cfg.griddim, block=cfg.blockdim,
                                        shmem_size=cfg.sharedmem, is_cooperative=False)
            else:
                config = D.LaunchConfig(grid=cfg.griddim, block=cfg.blockdim,
                                        shmem_size=cfg.sharedmem, cooperative_launch=False)
            handle = kernel._codelibrary.get_cufunc().kernel
            stream = cfg.stream
            go = functools.partial(D.launch, stream, config, handle)
            raw = cls(conv, list(kernel.argument_types), kernel._prepare_args, stream, go)
            got = raw.pack(args)
            ok = same_bytes(got, want) if by_bytes else same_args(got, want)
            return raw if ok else None
        except Exception:  # noqa: BLE001 - anything unexpected: numba's own launch stays
            return None


def _packer(conv: list):
    """`args -> parameters` for a kernel whose arguments convert by `conv` (None: a device
    buffer, whose numba fields it keeps as `_tracejit_kargs`), as one list display:
    `[*a0._tracejit_kargs, c1(a1), ...]`. AttributeError when a buffer has no fields kept."""
    names = [f"a{i}" for i in range(len(conv))]
    parts = [f"*{a}._tracejit_kargs" if c is None else a if c is _same else f"c{i}({a})"
             for i, (a, c) in enumerate(zip(names, conv))]
    ns = {f"c{i}": c for i, c in enumerate(conv) if c is not None}
    unpack = f"    ({', '.join(names)},) = args\n" if names else ""
    exec(f"def pack(args):\n{unpack}    return [{', '.join(parts)}]\n", ns)  # noqa: S102
    return ns["pack"]


def same_args(got: list, want: list) -> bool:
    """Field for field the same kernel arguments: the same type, and the same value."""
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if type(a) is not type(b):
            return False
        if (a.value != b.value) if isinstance(a, ctypes._SimpleCData) else (a != b):
            return False
    return True


def param_bytes(args: list):
    """The bytes cuda.core's launch hands the driver for each argument (None where cuda.core's
    ParamHolder is not there to ask): what a kernel parameter reads, from the start."""
    try:
        from cuda.core._kernel_arg_handler import ParamHolder
    except ImportError:
        return None
    if not args:
        return []
    held = ParamHolder(args)
    addrs = (ctypes.c_void_p * len(args)).from_address(held.ptr)
    return [ctypes.string_at(a, _size(v)) for a, v in zip(addrs, args)]


def _size(v) -> int:
    if isinstance(v, ctypes._SimpleCData):
        return ctypes.sizeof(v)
    if isinstance(v, bool):                 # a 1-byte parameter (how many bytes cuda.core
        return 1                            # writes for it differs between its versions)
    if isinstance(v, (int, float)):
        return 8
    return v.itemsize                       # a numpy scalar


def same_bytes(got: list, want: list) -> bool:
    """Whether the driver gets the same parameters: each of `want`'s values (numba's packing,
    sized as the kernel's parameter) equal to the first bytes of `got`'s."""
    if len(got) != len(want):
        return False
    g, w = param_bytes(got), param_bytes(want)
    return all(a[:len(b)] == b for a, b in zip(g, w))
