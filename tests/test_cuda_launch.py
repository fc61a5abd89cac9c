"""The raw kernel launch (codegen/cuda/launch.py) without a GPU: numba's launch internals are
stood in by fakes that pack arguments the way numba-cuda's `_Kernel._prepare_args` does, and
the raw path must hand cuda.core's `launch` exactly that, or not be used at all."""
import ctypes
import functools
import struct
import types

import pytest

pytest.importorskip("numba")
from numba.core import types as nbt  # noqa: E402

from tracejit.codegen.cuda import direct  # noqa: E402
from tracejit.codegen.cuda import launch as L  # noqa: E402


class Buf:
    """A stand-in device buffer: numba packs it as seven fields."""

    def __init__(self, ptr, n) -> None:
        self.ptr, self.n = ptr, n


class FakeKernel:
    extensions = ()
    cooperative = False

    def __init__(self, argtypes, drift=False, ctypes_fields=False) -> None:
        self.argument_types = argtypes
        self.prepared = 0
        self.drift, self.ctypes_fields = drift, ctypes_fields
        self._codelibrary = types.SimpleNamespace(
            get_cufunc=lambda: types.SimpleNamespace(kernel="handle"))

    def _prepare_args(self, ty, val, stream, retr, out):      # numba-cuda's rules
        self.prepared += 1
        if isinstance(ty, nbt.Array):
            fields = [0, 0, val.n, 4, val.ptr, val.n, 4]
            if self.ctypes_fields:        # older numba-cuda versions: ctypes objects
                c = ctypes.c_ssize_t, ctypes.c_uint64
                fields = [c[i not in (0, 1, 4)](f) for i, f in enumerate(fields)]
            out += fields
        elif isinstance(ty, nbt.Integer):
            out.append(getattr(ctypes, f"c_{ty}")(val + (1 if self.drift else 0)))
        elif ty == nbt.float64:
            out.append(ctypes.c_double(val))
        elif ty == nbt.float32:
            out.append(ctypes.c_float(val))
        else:
            out.append(val)


def _module(calls):
    return types.SimpleNamespace(
        types=nbt, CUDA_CORE_GE_1_0=True,
        LaunchConfig=lambda **kw: ("config", tuple(sorted(kw.items()))),
        launch=lambda stream, config, handle, *args: calls.append((stream, config, handle,
                                                                    args)))


CFG = types.SimpleNamespace(griddim=(4, 1, 1), blockdim=(256, 1, 1), stream="s", sharedmem=0)
TYPES = [nbt.float32[:], nbt.int64, nbt.float64, nbt.float32, nbt.boolean, nbt.float32[:]]


def _want(kernel, args):
    out = []
    for ty, v in zip(kernel.argument_types, args):
        kernel._prepare_args(ty, v, None, [], out)
    return out


def test_raw_launch_packs_arguments_as_numba_does_and_caches_buffers():
    calls = []
    k = FakeKernel(TYPES)
    a, b = Buf(1000, 8), Buf(2000, 8)
    args = (a, 3, 0.5, 0.25, True, b)
    raw = L.Raw.make(k, CFG, args, _module(calls))
    assert raw is not None
    args2 = (b, -7, 1.5, 2.0, False, Buf(3000, 2))
    before = k.prepared
    raw(args2)
    assert k.prepared == before + 1           # only the new buffer went through numba
    stream, config, handle, got = calls[-1]
    assert (stream, handle) == ("s", "handle") and dict(config[1])["grid"] == (4, 1, 1)
    want = _want(FakeKernel(TYPES), args2)
    assert L.same_bytes(list(got), want)
    # 64-bit ints and float64s go as Python numbers (cuda.core's fast path), not ctypes
    assert [type(x) for x in got[7:11]] == [int, float, ctypes.c_float, bool]
    assert not L.same_bytes(list(got), _want(FakeKernel(TYPES), (b, -6) + args2[2:]))


def test_array_fields_packed_as_ctypes_go_as_python_ints_with_the_same_bytes():
    """Older numba-cuda packs an array's seven fields as ctypes objects, which cuda.core
    converts ~20x slower than ints: the raw launch keeps them as ints with the same bytes
    (a pointer above 2**63 as its negative int64)."""
    calls = []
    k = FakeKernel(TYPES, ctypes_fields=True)
    args = (Buf(1000, 8), 3, 0.5, 0.25, True, Buf((1 << 64) - 4096, 8))
    raw = L.Raw.make(k, CFG, args, _module(calls))
    assert raw is not None
    raw(args)
    got = list(calls[-1][3])
    assert all(type(x) is int for x in got[:7] + got[11:])
    assert got[11 + 4] == -4096
    assert L.same_bytes(got, _want(FakeKernel(TYPES, ctypes_fields=True), args))


def test_raw_launch_is_refused_when_packing_differs_or_types_are_unknown(monkeypatch):
    args = (Buf(1, 1), 3, 0.5, 0.25, True, Buf(2, 1))
    assert L.Raw.make(FakeKernel(TYPES, drift=True), CFG, args, _module([])) is None
    assert L.Raw.make(FakeKernel([nbt.complex64]), CFG, (1j,), _module([])) is None
    monkeypatch.setenv("TRACEJIT_CUDA_LAUNCH", "numba")
    assert L.Raw.make(FakeKernel(TYPES), CFG, args, _module([])) is None


def test_same_bytes_compares_what_the_driver_gets():
    """Each numba-packed value (sized as the kernel parameter) against the first bytes that
    cuda.core would pass for ours."""
    assert L.same_bytes([5, -1, 2.5, 7], [ctypes.c_int64(5), ctypes.c_int64(-1),
                                          ctypes.c_double(2.5), 7])
    assert L.same_bytes([1 << 40], [ctypes.c_uint64(1 << 40)])
    assert not L.same_bytes([5], [ctypes.c_int64(6)])
    assert not L.same_bytes([2.5], [ctypes.c_float(2.5)])      # a double's bytes
    assert not L.same_bytes([ctypes.c_int32(5)], [ctypes.c_int64(5)])   # too short
    assert not L.same_bytes([5], [5, 6])


def test_same_args_compares_types_and_values():
    assert L.same_args([1, ctypes.c_int64(2)], [1, ctypes.c_int64(2)])
    assert not L.same_args([ctypes.c_int32(2)], [ctypes.c_int64(2)])
    assert not L.same_args([ctypes.c_double(1.0)], [ctypes.c_double(2.0)])
    assert not L.same_args([1], [1, 2])


# --- the direct launch (codegen/cuda/direct.py): cuLaunchKernel with one packed buffer ---

def _driver_info(argtypes):
    """The driver's (offset, size) per parameter: each at its natural alignment."""
    info, at = [], 0
    for ty in argtypes:
        sizes = [8] * 7 if isinstance(ty, nbt.Array) else \
            [struct.calcsize(direct._CODES[str(ty)])]
        for size in sizes:
            at = -(-at // size) * size
            info.append((at, size))
            at += size
    return info


class FakeDriver:
    """cuLaunchKernel: records what it was handed, returns `err`."""

    def __init__(self, err=0) -> None:
        self.calls, self.err = [], err

    def __call__(self, fn, gx, gy, gz, bx, by, bz, shmem, stream, params, extra):
        assert params is None and (extra[0], extra[2], extra[4]) == (1, 2, None)
        size = ctypes.c_size_t.from_address(extra[3]).value
        self.calls.append((fn, (gx, gy, gz), (bx, by, bz), shmem, stream,
                           ctypes.string_at(extra[1], size)))
        return self.err


DTYPES = [nbt.float32[:], nbt.int64, nbt.float64, nbt.float32, nbt.boolean, nbt.int32,
          nbt.float32[:], nbt.uint8, nbt.int64]
DCFG = types.SimpleNamespace(griddim=(4, 2, 1), blockdim=(256, 1, 1),
                             stream=types.SimpleNamespace(handle=77), sharedmem=128)


def _direct_kernel(argtypes, info=None):
    k = FakeKernel(argtypes)
    cufunc = types.SimpleNamespace(handle=0xABC, arguments_info=info or _driver_info(argtypes))
    k._codelibrary = types.SimpleNamespace(get_cufunc=lambda: types.SimpleNamespace(
        kernel=cufunc))
    return k


def test_direct_launch_packs_each_parameter_at_the_drivers_offset(monkeypatch):
    drv = FakeDriver()
    monkeypatch.setattr(direct, "cu_launch_kernel", lambda: drv)
    core = []
    k = _direct_kernel(DTYPES)
    args = (Buf(1000, 8), -3, 0.5, 0.25, True, -70000, Buf(2000, 4), 255, 1 << 40)
    raw = L.Raw.make(k, DCFG, args, _module(core))
    assert raw is not None and not isinstance(raw.go, functools.partial)   # not cuda.core
    args2 = (Buf(3000, 2), 9, -1.5, 2.0, False, 12, Buf(1000, 8), 7, -5)
    raw(args2)
    assert core == [] and len(drv.calls) == 1
    fn, grid, block, shmem, stream, blob = drv.calls[0]
    assert (fn, grid, block, shmem, stream) == (0xABC, (4, 2, 1), (256, 1, 1), 128, 77)
    want = L.param_bytes(_want(FakeKernel(DTYPES), args2))
    info = _driver_info(DTYPES)
    assert len(blob) == info[-1][0] + info[-1][1]
    for (off, size), b in zip(info, want):
        assert blob[off:off + size] == b[:size]
    assert blob[info[15][0] + 1:info[16][0]] == bytes(info[16][0] - info[15][0] - 1)  # padding


def test_direct_launch_is_refused_when_the_layout_differs(monkeypatch):
    monkeypatch.setattr(direct, "cu_launch_kernel", lambda: FakeDriver())
    args = (Buf(1000, 8), -3, 0.5, 0.25, True, -70000, Buf(2000, 4), 255, 1 << 40)
    info = _driver_info(DTYPES)
    for bad in (info[:-1], info[:3] + [(info[3][0], 4)] + info[4:]):    # short; wrong size
        raw = L.Raw.make(_direct_kernel(DTYPES, bad), DCFG, args, _module([]))
        assert raw is not None and isinstance(raw.go, functools.partial)   # cuda.core's
    monkeypatch.setenv("TRACEJIT_CUDA_LAUNCH", "core")
    raw = L.Raw.make(_direct_kernel(DTYPES), DCFG, args, _module([]))
    assert isinstance(raw.go, functools.partial)


def _launch(monkeypatch, drv, argtypes, args):
    """A Launch whose raw path is direct over `drv`, numba's own launch recorded."""
    monkeypatch.setattr(direct, "cu_launch_kernel", lambda: drv)
    monkeypatch.setattr(L.A, "SIM", False)
    k = _direct_kernel(argtypes)
    k.launched = []
    k.launch = lambda a, *cfg: k.launched.append(list(a))
    la = L.Launch.__new__(L.Launch)
    la.fn, la.grid, la.block, la.cfg, la.kernel = None, DCFG.griddim, DCFG.blockdim, DCFG, k
    la.raw = L.Raw.make(k, DCFG, args, _module([]))
    return la, k


def test_a_failed_driver_launch_goes_through_numba_and_keeps_the_direct_path(monkeypatch):
    drv = FakeDriver(err=201)                # CUDA_ERROR_INVALID_CONTEXT: nothing launched
    args = [Buf(1000, 8), 3]
    la, k = _launch(monkeypatch, drv, [nbt.float32[:], nbt.int64], args)
    la.run(args)
    assert len(drv.calls) == 1 and k.launched == [args] and la.raw


def test_a_value_its_parameter_cannot_hold_goes_through_numba(monkeypatch):
    drv = FakeDriver()
    la, k = _launch(monkeypatch, drv, [nbt.float32[:], nbt.int32], [Buf(1000, 8), 3])
    la.run([Buf(1000, 8), 1 << 40])          # numba's ctypes would wrap it: its launch decides
    assert drv.calls == [] and len(k.launched) == 1 and la.raw is False
