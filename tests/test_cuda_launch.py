"""The raw kernel launch (codegen/cuda/launch.py) without a GPU: numba's launch internals are
stood in by fakes that pack arguments the way numba-cuda's `_Kernel._prepare_args` does, and
the raw path must hand cuda.core's `launch` exactly that, or not be used at all."""
import ctypes
import types

import pytest

pytest.importorskip("numba")
from numba.core import types as nbt  # noqa: E402

from tracejit.codegen.cuda import launch as L  # noqa: E402


class Buf:
    """A stand-in device buffer: numba packs it as seven fields."""

    def __init__(self, ptr, n) -> None:
        self.ptr, self.n = ptr, n


class FakeKernel:
    extensions = ()
    cooperative = False

    def __init__(self, argtypes, drift=False) -> None:
        self.argument_types = argtypes
        self.prepared = 0
        self.drift = drift
        self._codelibrary = types.SimpleNamespace(
            get_cufunc=lambda: types.SimpleNamespace(kernel="handle"))

    def _prepare_args(self, ty, val, stream, retr, out):      # numba-cuda's rules
        self.prepared += 1
        if isinstance(ty, nbt.Array):
            out += [0, 0, val.n, 4, val.ptr, val.n, 4]
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
    # once every buffer's fields are kept, the generated packer gives the loop's parameters
    assert L.same_bytes(raw.fast(args2), raw._pack(args2)) and k.prepared == before + 1
    with pytest.raises(AttributeError):         # a new buffer: the loop packs and keeps it
        raw.fast((Buf(4000, 1),) + args2[1:])


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
