"""Tensor basics: factories, dtypes and PyTorch's promotion, metadata, conversions, repr,
zero-copy exchange (`__array__`, DLPack, from_numpy). Values PyTorch gives are written out (they
were checked against torch 2.13); the optional test at the end compares with torch directly."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj

# pytest's own warning filters show numpy's "divide by zero encountered" that tracejit silences
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")

DTYPES = {"float32": tj.float32, "float64": tj.float64, "int32": tj.int32, "int64": tj.int64,
          "bool": tj.bool}


# --- factories ---

def test_tensor_infers_pytorch_dtypes():
    assert tj.tensor(1.5).dtype is tj.float32
    assert tj.tensor(3).dtype is tj.int64
    assert tj.tensor(True).dtype is tj.bool
    assert tj.tensor([1, 2.0]).dtype is tj.float32
    assert tj.tensor([True, 1]).dtype is tj.int64
    assert tj.tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert tj.tensor([]).dtype is tj.float32 and tj.tensor([]).shape == (0,)
    assert tj.tensor(np.array([1, 2], np.int32)).dtype is tj.int32
    assert tj.tensor(np.float64(1.5)).dtype is tj.float64  # numpy scalars keep their dtype
    assert tj.tensor([1, 2], dtype=tj.float64).dtype is tj.float64
    assert tj.tensor(2.0, dtype=tj.int32).item() == 2


def test_tensor_copies_but_from_numpy_shares_memory():
    a = np.arange(4.0)
    t = tj.tensor(a)
    f = tj.from_numpy(a)
    a[0] = 9.0
    assert t[0].item() == 0.0 and f[0].item() == 9.0
    assert f.dtype is tj.float64
    f.add_(1.0)  # writes through to the array
    assert a[1] == 2.0
    with pytest.raises(TypeError):
        tj.from_numpy([1, 2])


def test_shape_factories():
    for f, v in ((tj.zeros, 0.0), (tj.ones, 1.0)):
        for args in ((2, 3), ((2, 3),), ([2, 3],)):
            t = f(*args)
            assert t.shape == (2, 3) and t.dtype is tj.float32
            assert np.all(t.numpy() == v)
    assert tj.zeros(2, dtype=tj.int32).dtype is tj.int32
    assert tj.ones(()).shape == () and tj.zeros(0, 3).shape == (0, 3)
    assert tj.empty(2, 3).shape == (2, 3) and tj.empty(2, 3).dtype is tj.float32
    assert tj.full((2, 2), 3).dtype is tj.int64  # fill value decides, as in PyTorch
    assert tj.full((2, 2), 3.5).dtype is tj.float32
    assert tj.full((2,), True).dtype is tj.bool
    assert tj.full((2,), 1, dtype=tj.float64).tolist() == [1.0, 1.0]
    t = tj.zeros(2, 3, dtype=tj.float64)
    assert tj.zeros_like(t).dtype is tj.float64 and tj.ones_like(t).shape == (2, 3)
    assert tj.zeros_like(t, dtype=tj.int32).dtype is tj.int32
    assert tj.full_like(t, 7).tolist() == [[7.0] * 3] * 2
    assert tj.full_like(tj.tensor([1, 2]), 2.7).tolist() == [2, 2]
    assert tj.ones(2, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="negative dimension"):
        tj.zeros(-1)


def test_arange_linspace_eye():
    assert tj.arange(5).tolist() == [0, 1, 2, 3, 4] and tj.arange(5).dtype is tj.int64
    assert tj.arange(1, 5).tolist() == [1, 2, 3, 4]
    assert tj.arange(10, 0, -3).tolist() == [10, 7, 4, 1]
    assert tj.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tj.arange(0, 1, 0.25).dtype is tj.float32
    assert tj.arange(5.0).dtype is tj.float32 and tj.arange(0, 1, 0.1).shape == (10,)
    assert tj.arange(3, dtype=tj.float64).dtype is tj.float64
    np.testing.assert_allclose(tj.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1])
    assert tj.linspace(0, 1, 5).dtype is tj.float32
    assert tj.linspace(-1, 1, 1).tolist() == [-1.0] and tj.linspace(0, 1, 0).shape == (0,)
    assert tj.eye(3).tolist() == np.eye(3).tolist() and tj.eye(2, 3).shape == (2, 3)
    assert tj.eye(2, dtype=tj.int64).dtype is tj.int64
    with pytest.raises(RuntimeError):
        tj.arange(0, 5, 0)


def test_random_factories_and_manual_seed():
    tj.manual_seed(123)
    a, b, c = tj.rand(50), tj.randn(2, 3), tj.randint(0, 3, (200,))
    tj.manual_seed(123)
    assert (tj.rand(50) == a).all() and (tj.randn(2, 3) == b).all()
    assert (tj.randint(0, 3, (200,)) == c).all()
    assert a.dtype is tj.float32 and b.dtype is tj.float32 and c.dtype is tj.int64
    assert 0 <= a.min().item() and a.max().item() < 1
    assert set(c.tolist()) == {0, 1, 2}
    assert tj.randint(5, (2, 2)).shape == (2, 2)  # randint(high, size)
    assert tj.rand(2, dtype=tj.float64).dtype is tj.float64
    big = tj.randn(20000)
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1) < 0.05


# --- dtypes and promotion (values from torch 2.13) ---

F32, F64, I32, I64, B = "float32", "float64", "int32", "int64", "bool"
# (a, b, dtype of a + b) for dimensioned tensors
PROMOTE = [(F32, F64, F64), (F32, I64, F32), (F64, I32, F64), (I32, I64, I64), (B, I32, I32),
           (B, F32, F32), (B, B, B), (I32, I32, I32)]
# (dim tensor dtype, other, result) where other is a 0-d tensor or a Python scalar
LOW_PRIORITY = [
    (I32, ("zero", F64), F64),      # 0-d of a higher category wins, with its own dtype
    (I32, ("zero", I64), I32),      # 0-d of the same category does not widen
    (F32, ("zero", F64), F32),
    (B, ("zero", I32), I32),
    (I32, ("scalar", 2.5), F32),    # a Python float is float32 when it changes the category
    (I64, ("scalar", 2.5), F32),
    (F64, ("scalar", 2.5), F64),
    (I32, ("scalar", 2), I32),
    (B, ("scalar", 2), I64),
    (B, ("scalar", True), B),
    (F32, ("scalar", 2), F32),
]


def _full(dtype, shape=(2,)):
    return tj.ones(shape, dtype=DTYPES[dtype])


@pytest.mark.parametrize("a,b,want", PROMOTE)
def test_promotion_between_tensors(a, b, want):
    assert (_full(a) + _full(b)).dtype is DTYPES[want]
    assert (_full(b) * _full(a)).dtype is DTYPES[want]
    assert tj.promote_types(DTYPES[a], DTYPES[b]) is DTYPES[want]


@pytest.mark.parametrize("a,other,want", LOW_PRIORITY)
def test_promotion_with_0d_and_scalars(a, other, want):
    kind, v = other
    o = _full(v, ()) if kind == "zero" else v
    assert (_full(a) + o).dtype is DTYPES[want]
    assert (o + _full(a)).dtype is DTYPES[want]
    assert tj.result_type(_full(a), o) is DTYPES[want]


def test_op_dtype_rules():
    i = tj.tensor([1, 2])
    assert (i / 2).dtype is tj.float32 and (i / 2).tolist() == [0.5, 1.0]
    assert (i // 2).dtype is tj.int64 and (i % 2).dtype is tj.int64
    assert i.exp().dtype is tj.float32 and i.sqrt().dtype is tj.float32
    assert (i < 1.5).dtype is tj.bool and (i == i + 0).dtype is tj.bool
    assert i.sum().dtype is tj.int64 and tj.tensor([1, 2], dtype=tj.int32).sum().dtype is \
        tj.int64
    assert tj.tensor([True, True]).sum().item() == 2
    assert i.abs().dtype is tj.int64 and i.neg().dtype is tj.int64
    assert (tj.tensor([1.0], dtype=tj.float64) * 2.5).dtype is tj.float64
    assert tj.where(tj.tensor([True]), i, 1.5).dtype is tj.float32
    assert tj.tensor([1, 2], dtype=tj.int32).masked_fill(tj.tensor([True, False]), 1.5) \
        .tolist() == [1, 2]  # masked_fill keeps self's dtype
    with pytest.raises(RuntimeError, match="mean"):
        i.mean()


def test_integer_and_float_division_semantics():
    assert (tj.tensor([-7, 7]) // 2).tolist() == [-4, 3]        # floor, as torch and numpy
    assert (tj.tensor([-7, 7]) % 3).tolist() == [2, 1]          # sign of the divisor
    assert (tj.tensor([-7.0, 7.0]) % -3).tolist() == [-1.0, -2.0]
    assert tj.tensor([-7, 7]).div(2, rounding_mode="trunc").tolist() == [-3, 3]
    assert tj.tensor([-7, 7]).div(2, rounding_mode="floor").tolist() == [-4, 3]
    out = (tj.tensor([-1.0, 0.0, 1.0]) / 0).tolist()
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tj.tensor([1, 2]) // 0
    with pytest.raises(RuntimeError, match="negative integer powers"):
        tj.tensor([2, 3]) ** -1
    assert (tj.tensor([2, 3]) ** 2).tolist() == [4, 9]
    assert (2 ** tj.tensor([2, 3])).tolist() == [4, 8]
    assert (tj.tensor([0.5, 1.5, 2.5, -0.5]).round()).tolist() == [0.0, 2.0, 2.0, -0.0]


def test_nan_inf_propagate():
    x = tj.tensor([0.0, -1.0, np.inf, np.nan])
    out = x.log().tolist()
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf and np.isnan(out[3])
    assert np.isnan(tj.maximum(x, tj.tensor(0.0))[3].item())
    assert np.isnan(x.sum().item()) and np.isnan(x.amax().item())
    assert x.argmax().item() == 3  # NaN is the maximum, as in torch and numpy


def test_nan_inf_results_do_not_warn():
    """numpy's "divide by zero encountered" warnings are not shown (PyTorch is silent); checked
    in a fresh interpreter, since pytest installs its own warning filters."""
    code = ("import tracejit as tj; x = tj.tensor([0.0, -1.0]); x.log(); x / 0; x.sqrt(); "
            "tj.tensor([1, 2]) / 0; x.rsqrt(); import numpy as np; np.log(np.zeros(1))")
    r = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                       text=True, cwd=os.path.dirname(os.path.dirname(__file__)), check=False)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "RuntimeWarning" in ln]
    assert len(lines) == 1 and "<string>" in lines[0], r.stderr  # only the user's own np.log


# --- metadata and conversions ---

def test_metadata():
    t = tj.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tj.Size)
    assert repr(t.shape) == "tracejit.Size([2, 3, 4])"
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.ndim == 3 and t.dim() == 3 and t.numel() == 24 and len(t) == 2
    assert t.dtype is tj.float32 and repr(t.dtype) == "tracejit.float32"
    assert t.device == tj.device("cpu") and str(t.device) == "cpu"
    assert t.requires_grad is False and t.grad is None and t.grad_fn is None and t.is_leaf
    assert tj.tensor(1.0).numel() == 1 and tj.tensor(1.0).shape == ()
    with pytest.raises(IndexError):
        t.size(3)
    with pytest.raises(TypeError):
        len(tj.tensor(1.0))


def test_item_tolist_numpy():
    assert tj.tensor(5).item() == 5 and isinstance(tj.tensor(5).item(), int)
    assert isinstance(tj.tensor(2.5).item(), float) and tj.tensor([[2.5]]).item() == 2.5
    assert tj.tensor(True).item() is True
    assert tj.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert tj.tensor(2.5).tolist() == 2.5
    t = tj.arange(3.0)
    a = t.numpy()
    a[0] = 7.0  # numpy() shares memory, as in torch
    assert t[0].item() == 7.0
    assert float(tj.tensor(2.5)) == 2.5 and int(tj.tensor(3)) == 3
    assert [0, 1, 2][tj.tensor(1)] == 1  # __index__
    with pytest.raises(RuntimeError, match="requires grad"):
        tj.ones(2, requires_grad=True).numpy()
    assert tj.ones(2, requires_grad=True).detach().numpy().tolist() == [1.0, 1.0]


def test_detach_clone_contiguous():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    d[0] = 5.0  # shares storage
    assert x[0].item() == 5.0
    c = x.clone()
    assert c.requires_grad and c.grad_fn is not None and not c.is_leaf
    with tj.no_grad():
        c[1] = 9.0
    assert x[1].item() == 2.0
    m = tj.arange(6.0).reshape(2, 3)
    assert m.is_contiguous() and m.contiguous() is m
    t = m.T
    assert not t.is_contiguous()
    tc = t.contiguous()
    assert tc.is_contiguous() and tc.tolist() == t.tolist()


def test_casts():
    t = tj.tensor([1.7, -2.2, 0.0])
    assert t.float() is t
    assert t.double().dtype is tj.float64
    assert t.long().tolist() == [1, -2, 0] and t.long().dtype is tj.int64
    assert t.int().dtype is tj.int32 and t.bool().tolist() == [True, True, False]
    assert t.to(tj.float64).dtype is tj.float64 and t.to("float64").dtype is tj.float64
    assert t.to(tj.tensor([1])).dtype is tj.int64
    assert t.to("cpu") is t and t.to(tj.float32) is t
    assert t.type_as(tj.tensor([1], dtype=tj.int32)).dtype is tj.int32
    x = tj.tensor([1.5], requires_grad=True)
    assert x.double().requires_grad and not x.long().requires_grad


def test_requires_grad_flags():
    x = tj.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
    x.requires_grad_(False)
    assert not x.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tj.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        tj.tensor([1, 2], requires_grad=True)
    y = tj.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


# --- repr, as PyTorch prints it (strings from torch 2.13, 'torch' -> 'tracejit') ---

REPRS = [
    ("tj.tensor([1.7902, -1.1864, -1.9733])", "tensor([ 1.7902, -1.1864, -1.9733])"),
    ("tj.tensor([1e-5, 1.0])", "tensor([1.0000e-05, 1.0000e+00])"),
    ("tj.tensor([1e9, 1.0])", "tensor([1.0000e+09, 1.0000e+00])"),
    ("tj.tensor([float('nan'), 1.0, float('inf')])", "tensor([nan, 1., inf])"),
    ("tj.tensor([])", "tensor([])"),
    ("tj.zeros(0, 3)", "tensor([], size=(0, 3))"),
    ("tj.zeros(2, 0, dtype=tj.int32)", "tensor([], size=(2, 0), dtype=tracejit.int32)"),
    ("tj.tensor([], dtype=tj.int64)", "tensor([], dtype=tracejit.int64)"),
    ("tj.tensor(2.5, dtype=tj.float64)", "tensor(2.5000, dtype=tracejit.float64)"),
    ("tj.tensor([True, False])", "tensor([ True, False])"),
    ("tj.tensor([1., 2.], requires_grad=True) * 2", "tensor([2., 4.], grad_fn=<MulBackward0>)"),
    ("tj.tensor([[1, -20], [300, 4]])", "tensor([[  1, -20],\n        [300,   4]])"),
    ("tj.tensor([1., -2., 3.25])", "tensor([ 1.0000, -2.0000,  3.2500])"),
    ("tj.tensor([123456.7, 1.0])", "tensor([1.2346e+05, 1.0000e+00])"),
    ("tj.tensor(3)", "tensor(3)"),
    ("tj.tensor(-3.0)", "tensor(-3.)"),
    ("tj.tensor([1, 2], dtype=tj.int32)", "tensor([1, 2], dtype=tracejit.int32)"),
    ("tj.tensor([1.0, 2.0], requires_grad=True)", "tensor([1., 2.], requires_grad=True)"),
    ("tj.tensor([[-1.5, 1.0], [2.0, 1000.0]])",
     "tensor([[  -1.5000,    1.0000],\n        [   2.0000, 1000.0000]])"),
    ("tj.tensor([-float('inf'), 2.5])", "tensor([  -inf, 2.5000])"),
    ("tj.tensor([1., 2.], requires_grad=True).sum()", "tensor(3., grad_fn=<SumBackward0>)"),
    ("tj.tensor([2.0], dtype=tj.float64, requires_grad=True)",
     "tensor([2.], dtype=tracejit.float64, requires_grad=True)"),
    ("tj.tensor([12345.6])", "tensor([12345.5996])"),
    ("tj.arange(2000.)", ("tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, "
                          "1.9980e+03,\n        1.9990e+03])")),
    ("tj.arange(3000).reshape(3, 1000)", ("tensor([[   0,    1,    2,  ...,  997,  998,  999],\n"
                                          "        [1000, 1001, 1002,  ..., 1997, 1998, 1999],\n"
                                          "        [2000, 2001, 2002,  ..., 2997, 2998, 2999]])")),
]


@pytest.mark.parametrize("expr,want", REPRS)
def test_repr_like_pytorch(expr, want):
    assert repr(eval(expr)) == want


# --- zero-copy exchange ---

def test_array_protocol():
    t = tj.arange(6.0).reshape(2, 3)
    a = np.asarray(t)
    assert a.dtype == np.float32 and np.shares_memory(a, t.numpy())
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True) is not t.numpy()
    assert np.add(t, 1).tolist() == (t + 1).tolist()
    assert isinstance(t + np.float32(1), tj.Tensor)
    assert (np.float64(2.0) * t).dtype is tj.float32  # numpy scalars act as Python scalars
    r = np.ones(3) + t  # numpy arrays act as tensors (float64 here), as in torch
    assert isinstance(r, tj.Tensor) and r.dtype is tj.float64 and r.shape == (2, 3)


def test_dlpack_roundtrip_shares_memory():
    t = tj.arange(6.0).reshape(2, 3)
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t.numpy()) and a.shape == (2, 3)
    at = np.from_dlpack(t.T)  # strides travel too
    assert at.shape == (3, 2) and at.tolist() == t.T.tolist()
    src = np.arange(4.0)
    u = tj.from_dlpack(src)
    src[0] = -1.0
    assert u[0].item() == -1.0 and u.dtype is tj.float64
    assert tj.from_dlpack(t) is t
    assert t.__dlpack_device__() == (1, 0)  # kDLCPU


def test_dlpack_with_torch():
    torch = pytest.importorskip("torch")
    t = tj.arange(6.0).reshape(2, 3)
    pt = torch.from_dlpack(t)
    pt[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    back = tj.from_dlpack(torch.arange(3.0))
    assert back.tolist() == [0.0, 1.0, 2.0]


def test_repr_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    for expr, _ in REPRS:
        assert repr(eval(expr)) == repr(eval(expr, {"tj": torch})).replace("torch", "tracejit")
