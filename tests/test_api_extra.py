"""Behaviour of the torch functions added in tracejit/{pointwise,rearrange,selection,sorting,
scans,tensor_info,linalg}.py beyond the value/gradient rows of api_cases.py: dtypes, integer
and bool inputs, NaN ordering, errors (torch's exception types), graph breaks under
tj.compile, CUDA refusals. Expectations are hand-computed; the last tests compare with torch
when it is installed."""
import math
import warnings

import numpy as np
import pytest

import tracejit as tj


def _list(t):
    return t.numpy().tolist()


# --- pointwise ---

def test_fmod_takes_the_dividends_sign():
    a = tj.tensor([5.5, -5.5, 5.5, -5.5, -1e-10])
    b = tj.tensor([2.0, 2.0, -2.0, -2.0, 1.0])
    np.testing.assert_array_equal(tj.fmod(a, b).numpy(),
                                  np.float32([1.5, -1.5, 1.5, -1.5, -1e-10]))
    assert _list(tj.tensor([7, -7]).fmod(3)) == [1, -1]
    assert tj.tensor([7, -7]).fmod(3).dtype is tj.int64
    assert tj.tensor([7, -7]).fmod(2.5).dtype is tj.float32
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tj.fmod(tj.tensor([1, 2]), tj.tensor([0, 1]))


def test_fmod_gradient_at_zero_dividend():
    a = tj.tensor([0.0, 7.0], requires_grad=True)
    b = tj.tensor([3.0, -2.0], requires_grad=True)
    a.fmod(b).sum().backward()
    assert _list(a.grad) == [1.0, 1.0]          # 1 also at a == 0 (not sign(a))
    assert _list(b.grad) == [0.0, 3.0]          # -trunc(a / b)


def test_lerp_addcmul_addcdiv_nan_to_num():
    s, e = tj.tensor([1.0, 2.0]), tj.tensor([3.0, 6.0])
    assert _list(s.lerp(e, 0.25)) == [1.5, 3.0]
    assert _list(tj.lerp(s, e, tj.tensor([1.0, 0.5]))) == [3.0, 4.0]
    with pytest.raises(NotImplementedError):
        tj.lerp(tj.tensor([1]), tj.tensor([2]), 0.5)
    assert _list(tj.addcmul(s, s, e, value=2)) == [7.0, 26.0]
    assert _list(s.addcdiv(e, s, value=-1)) == [-2.0, -1.0]
    with pytest.raises(RuntimeError, match="Integer division"):
        tj.addcdiv(s, tj.tensor([1]), tj.tensor([2]))
    x = s.clone()
    x.addcmul_(s, s)
    assert _list(x) == [2.0, 6.0]
    y = tj.tensor([math.nan, math.inf, -math.inf, 1.5])
    big = float(np.finfo(np.float32).max)
    assert _list(y.nan_to_num()) == [0.0, big, -big, 1.5]
    assert _list(tj.nan_to_num(y.double(), 1.0, 2.0, -2.0)) == [1.0, 2.0, -2.0, 1.5]
    assert _list(y.half().nan_to_num()) == [0.0, 65504.0, -65504.0, 1.5]
    assert tj.nan_to_num(tj.tensor([1, 2])).dtype is tj.int64


def test_isclose_allclose_equal():
    a = tj.tensor([1.0, math.nan, math.inf, 1.0, 2.0])
    b = tj.tensor([1.0 + 1e-6, math.nan, math.inf, 1.1, -math.inf])
    assert _list(tj.isclose(a, b)) == [True, False, True, False, False]
    assert _list(a.isclose(b, equal_nan=True)) == [True, True, True, False, False]
    assert tj.isclose(a, b).dtype is tj.bool
    assert _list(tj.isclose(tj.tensor([1, 2]), tj.tensor([2, 4]), atol=1)) == [True, False]
    with pytest.raises(RuntimeError):
        tj.isclose(tj.ones(2), tj.ones(2, dtype=tj.float64))
    assert tj.allclose(tj.ones(3), tj.ones(3) + 1e-9) is True
    assert tj.ones(3).allclose(tj.ones(3) + 1e-3) is False
    assert tj.equal(tj.tensor([1, 2]), tj.tensor([1, 2])) is True
    assert tj.tensor([1, 2]).equal(tj.tensor([1])) is False
    assert tj.tensor([math.nan]).equal(tj.tensor([math.nan])) is False


def test_trig_and_log_values():
    x = tj.tensor([0.0, 1.0, -1.0], dtype=tj.float64)
    np.testing.assert_allclose(x.tan().numpy(), [0.0, 1.5574077246549023, -1.5574077246549023])
    np.testing.assert_allclose(x.sinh().numpy(), [0.0, 1.1752011936438014, -1.1752011936438014])
    np.testing.assert_allclose(x.cosh().numpy(), [1.0, 1.5430806348152437, 1.5430806348152437])
    assert _list(tj.log10(tj.tensor([1, 10, 1000]))) == [0.0, 1.0, 3.0]
    assert tj.log10(tj.tensor([10])).dtype is tj.float32
    assert tj.sgn(tj.tensor([-2.0, 0.0, 3.0])).numpy().tolist() == [-1.0, 0.0, 1.0]
    # big arguments: no overflow before the result overflows (float32 max is e^88.72)
    assert np.isfinite(tj.tensor([89.0]).sinh().numpy()).all()
    assert np.isfinite(tj.tensor([-89.0]).cosh().numpy()).all()


def test_atan2_quadrants_dtype_and_grad():
    y = tj.tensor([1.0, 1.0, -1.0, -1.0], requires_grad=True)
    x = tj.tensor([1.0, -1.0, -1.0, 1.0], requires_grad=True)
    out = tj.atan2(y, x)
    np.testing.assert_allclose(out.detach().numpy(), np.pi * np.float32([.25, .75, -.75, -.25]),
                               rtol=1e-6)
    out.sum().backward()
    assert _list(y.grad) == [0.5, -0.5, -0.5, 0.5]       # x / (x^2 + y^2)
    assert _list(x.grad) == [-0.5, -0.5, 0.5, 0.5]       # -y / (x^2 + y^2)
    assert tj.atan2(tj.tensor([1]), tj.tensor([2])).dtype is tj.float32
    with pytest.raises(TypeError):
        tj.atan2(tj.ones(2), 2.0)


def test_clamp_min_max_functions_and_inplace():
    x = tj.tensor([-1.0, 0.5, 2.0])
    assert _list(tj.clamp_min(x, 0.0)) == [0.0, 0.5, 2.0]
    assert _list(tj.clamp_max(x, 1.0)) == [-1.0, 0.5, 1.0]
    x.clamp_min_(0.0).clamp_max_(1.0)
    assert _list(x) == [0.0, 0.5, 1.0]


def test_logspace():
    np.testing.assert_allclose(tj.logspace(0, 2, 3).numpy(), [1.0, 10.0, 100.0])
    t = tj.logspace(0, 3, 4, base=2.0, dtype=tj.float64)
    assert t.dtype is tj.float64 and _list(t) == [1.0, 2.0, 4.0, 8.0]


# --- rearranging ---

def test_tril_triu_diag_roll():
    x = tj.arange(1, 10).reshape(3, 3)
    assert _list(x.tril()) == [[1, 0, 0], [4, 5, 0], [7, 8, 9]]
    assert _list(tj.triu(x, 1)) == [[0, 2, 3], [0, 0, 6], [0, 0, 0]]
    assert tj.tril(x > 2).dtype is tj.bool
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        tj.ones(3).tril()
    assert _list(tj.diag(tj.tensor([1, 2]), 1)) == [[0, 1, 0], [0, 0, 2], [0, 0, 0]]
    assert _list(x.diag(-1)) == [5 - 1, 8]
    assert _list(x.diag(5)) == []
    with pytest.raises(RuntimeError, match="1D or 2D"):
        tj.diag(tj.ones(2, 2, 2))
    assert _list(x.roll(1, 0)) == [[7, 8, 9], [1, 2, 3], [4, 5, 6]]
    assert _list(tj.roll(x, -1)) == [[2, 3, 4], [5, 6, 7], [8, 9, 1]]
    with pytest.raises(RuntimeError, match="align"):
        x.roll((1, 2), 0)


def test_movedim_tile_repeat_interleave_unbind():
    x = tj.zeros(2, 3, 4)
    assert tuple(x.movedim(0, -1).shape) == (3, 4, 2)
    assert tuple(tj.moveaxis(x, (0, 1), (2, 0)).shape) == (3, 4, 2)
    with pytest.raises(RuntimeError, match="repeated dim"):
        x.movedim((0, 0), (1, 2))
    with pytest.raises(IndexError):
        x.movedim(3, 0)
    assert tuple(tj.ones(2, 3).tile((2,)).shape) == (2, 6)
    assert _list(tj.tensor([1, 2]).repeat_interleave(2)) == [1, 1, 2, 2]
    assert _list(tj.tensor([[1, 2]]).repeat_interleave(tj.tensor([2, 1]), dim=1)) == \
        [[1, 1, 2]]
    assert _list(tj.repeat_interleave(tj.tensor([2, 0, 1]))) == [0, 0, 2]
    with pytest.raises(RuntimeError, match="non-negative"):
        tj.ones(2).repeat_interleave(-1)
    a, b = tj.tensor([[1, 2], [3, 4]]).unbind(1)
    assert _list(a) == [1, 3] and _list(b) == [2, 4]


def test_diff_outer():
    x = tj.tensor([1, 4, 9, 16])
    assert _list(x.diff()) == [3, 5, 7]
    assert _list(tj.diff(x, n=2)) == [2, 2]
    assert _list(x.diff(prepend=tj.tensor([0]), append=tj.tensor([20]))) == [1, 3, 5, 7, 4]
    assert _list(tj.tensor([True, True, False]).diff()) == [False, True]
    with pytest.raises(RuntimeError, match="one-dimensional"):
        tj.tensor(1.0).diff()
    assert _list(tj.outer(tj.tensor([1, 2]), tj.tensor([3, 4, 5]))) == [[3, 4, 5], [6, 8, 10]]
    with pytest.raises(RuntimeError, match="1-D"):
        tj.outer(tj.ones(2, 2), tj.ones(2))


def test_norm():
    x = tj.tensor([[3.0, -4.0], [0.0, 0.0]], requires_grad=True)
    assert x.norm().item() == 5.0
    assert _list(tj.norm(x, dim=1).detach()) == [5.0, 0.0]
    assert x.norm(1).item() == 7.0 and x.norm(math.inf).item() == 4.0
    assert x.norm(0).item() == 2.0 and x.norm(-math.inf, dim=1).detach().tolist() == [3.0, 0.0]
    x.norm(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.6, -0.8], [0.0, 0.0]])    # 0 at the 0 row
    with pytest.raises(RuntimeError):
        tj.tensor([1, 2]).norm()
    assert tj.linalg.vector_norm(tj.tensor([1.0, 2.0, 2.0])).item() == 3.0


# --- selection and scatter ---

def test_index_select_masked_select():
    x = tj.tensor([[1, 2, 3], [4, 5, 6]])
    assert _list(x.index_select(1, tj.tensor([2, 0, 2]))) == [[3, 1, 3], [6, 4, 6]]
    assert _list(tj.index_select(x, -2, tj.tensor([1], dtype=tj.int32))) == [[4, 5, 6]]
    with pytest.raises(IndexError, match="out of range"):
        x.index_select(1, tj.tensor([3]))
    with pytest.raises(IndexError, match="vector"):
        x.index_select(1, tj.tensor([[0]]))
    assert _list(x.masked_select(x > 2)) == [3, 4, 5, 6]
    assert _list(tj.masked_select(x, tj.tensor([True, False, True]))) == [1, 3, 4, 6]
    with pytest.raises(RuntimeError, match="BoolTensor"):
        x.masked_select(tj.tensor([1, 0, 1]))


def test_scatter_and_scatter_add():
    x = tj.zeros(3, 4)
    i = tj.tensor([[0, 2], [1, 1]])
    src = tj.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]])
    assert _list(x.scatter(1, i, src)) == [[1, 0, 2, 0], [0, 4, 0, 0], [0, 0, 0, 0]]
    assert _list(tj.scatter_add(x, 1, i, src)) == [[1, 0, 2, 0], [0, 7, 0, 0], [0, 0, 0, 0]]
    assert _list(x.scatter(0, tj.tensor([[2]]), 5.0)) == [[0] * 4, [0] * 4, [5, 0, 0, 0]]
    assert _list(x.scatter(1, i, src, reduce="add")) == _list(x.scatter_add(1, i, src))
    y = tj.zeros(2, 2)
    y.scatter_(0, tj.tensor([[1, 0]]), 1.0)
    y.scatter_add_(1, tj.tensor([[0], [0]]), tj.tensor([[2.0], [3.0]]))
    assert _list(y) == [[2, 1], [4, 0]]
    with pytest.raises(RuntimeError, match="out of bounds"):
        x.scatter(0, tj.tensor([[3]]), 1.0)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.scatter(0, tj.tensor([0]), 1.0)
    with pytest.raises(RuntimeError, match="dtype"):
        x.scatter(1, i, src.double())
    with pytest.raises(NotImplementedError):
        x.scatter(1, i, src, reduce="multiply")


def test_scatter_gradients():
    x = tj.ones(2, 3, requires_grad=True)
    src = tj.tensor([[1.0, 2.0]], requires_grad=True)
    i = tj.tensor([[2, 0]])
    (x.scatter(1, i, src) * tj.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum().backward()
    assert _list(x.grad) == [[0, 2, 0], [4, 5, 6]]         # overwritten places get none
    assert _list(src.grad) == [[3, 1]]                      # gathered from the gradient
    x.grad = None
    x.scatter_add(1, i, src).sum().backward()
    assert _list(x.grad) == [[1, 1, 1], [1, 1, 1]]


# --- sorting ---

def test_sort_nan_order_ties_and_return_type():
    x = tj.tensor([3.0, math.nan, 1.0, 3.0, -math.inf])
    r = x.sort(stable=True)
    assert type(r).__name__ == "sort" and r.indices.dtype is tj.int64
    assert _list(r.indices) == [4, 2, 0, 3, 1]              # NaN last, ties in order
    r = tj.sort(x, descending=True, stable=True)
    assert _list(r.indices) == [1, 0, 3, 2, 4]              # NaN first, ties still in order
    assert _list(tj.tensor([3, -2 ** 63, 7]).sort(descending=True).values) == [7, 3, -2 ** 63]
    assert _list(tj.tensor([True, False, True]).argsort(stable=True)) == [1, 0, 2]
    v, i = tj.tensor(2.5).sort()
    assert v.item() == 2.5 and i.item() == 0


def test_topk_kthvalue_median():
    x = tj.tensor([[5.0, 1.0, 4.0, 2.0], [0.0, 8.0, 7.0, 6.0]])
    v, i = x.topk(2)
    assert _list(v) == [[5, 4], [8, 7]] and _list(i) == [[0, 2], [1, 2]]
    assert _list(tj.topk(x, 1, dim=0, largest=False).indices) == [[1, 0, 0, 0]]
    with pytest.raises(RuntimeError, match="out of range"):
        x.topk(5)
    v, i = x.kthvalue(2)
    assert _list(v) == [2, 6] and _list(i) == [3, 3]
    assert tuple(tj.kthvalue(x, 1, 0, keepdim=True).values.shape) == (1, 4)
    with pytest.raises(RuntimeError, match="out of range"):
        x.kthvalue(0)
    assert x.median().item() == 4.0                     # lower median of 8 values
    v, i = x.median(1)
    assert _list(v) == [2, 6] and _list(i) == [3, 3]
    v, i = tj.tensor([[1.0, math.nan, 0.0]]).median(1)
    assert math.isnan(v.item()) and i.item() == 1
    assert math.isnan(tj.tensor([1.0, math.nan]).median().item())
    assert tj.tensor([3, 1, 2]).median().dtype is tj.int64
    with pytest.raises(IndexError):
        tj.ones(0, 2).median(0)


def test_sorted_values_gradient_goes_to_the_source_element():
    x = tj.tensor([3.0, 1.0, 2.0], requires_grad=True)
    (x.sort(descending=True).values * tj.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert _list(x.grad) == [1.0, 100.0, 10.0]
    x.grad = None
    x.median().backward()
    assert _list(x.grad) == [0.0, 0.0, 1.0]


# --- scans ---

def test_cumsum_cumprod_dtypes():
    assert tj.tensor([1, 2, 3], dtype=tj.int32).cumsum(0).dtype is tj.int64
    assert _list(tj.tensor([True, True]).cumsum(0)) == [1, 2]
    t = tj.tensor([1, 2, 3]).cumsum(0, dtype=tj.float64)
    assert t.dtype is tj.float64 and _list(t) == [1.0, 3.0, 6.0]
    assert tj.tensor([1, 2]).cumsum(0, dtype=tj.int32).dtype is tj.int32
    assert _list(tj.cumprod(tj.tensor([[1, 2], [3, 4]]), -2)) == [[1, 2], [3, 8]]
    assert tj.tensor(2.0).cumsum(-1).item() == 2.0
    with pytest.raises(IndexError):
        tj.ones(2, 2).cumsum(2)
    x = tj.tensor([1.0, 2.0])
    x.cumsum_(0)
    assert _list(x) == [1.0, 3.0]


def test_cumprod_gradient_with_zeros():
    x = tj.tensor([2.0, 0.0, 3.0, 0.0, 5.0], requires_grad=True)
    x.cumprod(0).sum().backward()
    # out = [2, 0, 0, 0, 0]; d/dx0 = 1, d/dx1 = 2 + 2*3 (the zero itself), later ones 0
    assert _list(x.grad) == [1.0, 8.0, 0.0, 0.0, 0.0]


# --- tensor facts ---

def test_finfo_iinfo():
    f = tj.finfo(tj.float32)
    assert (f.bits, f.eps, f.tiny, f.resolution) == (32, 2.0 ** -23, 2.0 ** -126, 1e-06)
    assert f.max == float(np.finfo(np.float32).max) and f.min == -f.max
    assert tj.finfo().bits == 32 and tj.finfo(tj.float16).eps == 2.0 ** -10
    assert tj.finfo(tj.float64).resolution == 1e-15
    i = tj.iinfo(tj.int8)
    assert (i.bits, i.min, i.max) == (8, -128, 127)
    assert tj.iinfo(tj.uint8).max == 255
    with pytest.raises(TypeError):
        tj.finfo(tj.int32)
    with pytest.raises(TypeError):
        tj.iinfo(tj.float32)


def test_stride_type_casts_numel():
    x = tj.zeros(2, 3, 4)
    assert x.stride() == (12, 4, 1) and x.stride(-2) == 4
    assert x.transpose(0, 2).stride() == (1, 4, 12)
    assert tj.zeros(3, 1).expand(3, 5).stride() == (1, 0)
    assert x[:, :, ::2].stride() == (12, 4, 2)
    assert x.type() == "tracejit.FloatTensor" and x.long().type() == "tracejit.LongTensor"
    assert x.type(tj.int32).dtype is tj.int32
    assert x.type("tracejit.DoubleTensor").dtype is tj.float64
    assert (x.byte().dtype, x.char().dtype, x.short().dtype) == (tj.uint8, tj.int8, tj.int16)
    assert x.is_floating_point() and not tj.is_floating_point(x.long())
    assert tj.numel(x) == 24


# --- tj.compile: each function compiles (or breaks the graph cleanly) and equals eager ---

def _compiled_equals_eager(fn, *arrays):
    cf = tj.compile(fn)
    for shift in (0.0, 1.0):      # twice, different data: no baked constants
        ins = [tj.tensor(a + shift) for a in arrays]
        want, got = fn(*ins), cf(*ins)
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        for w, g in zip(want, got):
            assert w.dtype is g.dtype and tuple(w.shape) == tuple(g.shape)
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-7)


X = np.random.default_rng(3).standard_normal((3, 4))
Z = np.abs(X) + 0.5
COMPILED = {
    "tril-triu-diag": lambda a: a.tril(1) + a.triu(-1) + tj.diag(a.diag())[:, :1],
    "roll-movedim-tile": lambda a: a.roll(1, 1).movedim(0, 1).tile((2, 1)),
    "repeat_interleave-unbind": lambda a: a.repeat_interleave(2, 0).unbind(1)[2],
    "pointwise": lambda a: a.lerp(a * 2, 0.3).addcmul(a, a).addcdiv(a, a.exp()).fmod(0.7),
    "nan_to_num-isclose": lambda a: a.log().nan_to_num() + a.isclose(a * 1.0).float(),
    "trig": lambda a: a.tan() + a.sinh() + a.cosh() + a.abs().log10() + tj.atan2(a, a + 1),
    "outer-norm-diff": lambda a: tj.outer(a[0], a[1]) * a.norm() + a.diff().norm(1),
    "select-scatter": lambda a: a.index_select(1, tj.tensor([3, 0])).scatter(
        1, tj.tensor([[1], [0], [1]]), 2.0).scatter_add(0, tj.tensor([[2, 0]]), a[:1, :2] * 1),
    "scans": lambda a: a.cumsum(1) + a.cumprod(0),
    "sorting": lambda a: (a.sort(1).values, a.argsort(0), a.topk(2).values,
                          a.kthvalue(2, 0).values, a.median(), a.median(1).indices),
    "cumsum-int-dtype": lambda a: (a > 0).cumsum(1, dtype=tj.int32),
}


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_equals_eager(name):
    _compiled_equals_eager(COMPILED[name], X)


def test_compiled_gradients_equal_eager():
    def f(a):
        return (a.sort(1).values * a.cumprod(1)).sum() + a.cumsum(0).median() + \
            a.scatter(1, tj.tensor([[0], [1], [2]]), a[:, 3:]).norm()
    cf = tj.compile(f)
    for shift in (0.0, 1.0):
        a, b = tj.tensor(X + shift, requires_grad=True), tj.tensor(X + shift, requires_grad=True)
        f(a).backward()
        cf(b).backward()
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [lambda a: a.masked_select(a > 0) * 2,
                                lambda a: a * 2 if tj.allclose(a, a) else a,
                                lambda a: a * a.stride(0)],
                         ids=["masked_select", "allclose", "stride"])
def test_value_dependent_functions_break_the_graph(fn):
    cf = tj.compile(fn)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = cf(tj.tensor(X))
    assert any("graph break" in str(m.message) for m in w)
    np.testing.assert_array_equal(got.numpy(), fn(tj.tensor(X)).numpy())
    with pytest.raises(Exception, match="graph break|needs the value"):
        tj.compile(fn, fullgraph=True)(tj.tensor(X + 1))


# --- CUDA: numpy-only ops refuse clearly (run where CUDA or its simulator is available) ---

def test_cuda_numpy_only_ops_raise_clearly():
    if not tj.cuda.is_available():
        pytest.skip("no CUDA (set NUMBA_ENABLE_CUDASIM=1 for the simulator)")
    x = tj.ones(2, 3).cuda()
    for f in (lambda: x.cumsum(1), lambda: x.sort(), lambda: tj.atan2(x, x)):
        with pytest.raises(NotImplementedError, match="no CUDA implementation"):
            f()
    got = x.scatter_add(1, tj.tensor([[0, 0]]).cuda(), x[:1, :2].contiguous()).cpu()
    assert _list(got) == [[3, 1, 1], [1, 1, 1]]
    assert _list(x.tril().cpu()) == [[1, 0, 0], [1, 1, 0]]


# --- against torch, where it is installed ---

def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5))
    a[0, 1] = 0.0
    s = np.array([[3.0, 1.0, np.nan, 1.0, -np.inf], [0.0, -0.0, 5.0, 5.0, np.inf]])
    cases = [
        (lambda m, x: x.cumprod(1), a), (lambda m, x: x.sort(dim=1, stable=True), s),
        (lambda m, x: m.sort(x, dim=1, descending=True, stable=True), s),
        (lambda m, x: x.median(1), s), (lambda m, x: x.topk(2, 0), a),
        (lambda m, x: x.kthvalue(3, 1), a), (lambda m, x: m.fmod(x * 7, -1.5), a),
        (lambda m, x: x.nan_to_num(), s), (lambda m, x: x.norm(3, dim=0), a),
        (lambda m, x: m.atan2(x, x.flip(0)), a), (lambda m, x: x.sinh() + x.cosh(), a),
        (lambda m, x: m.diag(x, 1), a), (lambda m, x: x.roll((1, 3), (0, 1)), a),
        (lambda m, x: x.lerp(x.flip(1), 0.7), a), (lambda m, x: x.diff(n=2, dim=1), a),
    ]
    for i, (f, arr) in enumerate(cases):
        x = tj.tensor(arr, requires_grad=not np.isnan(arr).any())
        t = torch.tensor(arr, requires_grad=not np.isnan(arr).any())
        got, want = f(tj, x), f(torch, t)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-12,
                                       atol=1e-12, err_msg=f"case {i}")
        if x.requires_grad:
            got[0].sum().backward()
            want[0].sum().backward()
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10,
                                       atol=1e-12, err_msg=f"case {i} grad")
