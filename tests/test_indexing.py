"""`tensor[key]` and `tensor[key] = value`: ints, slices, None, Ellipsis, bool masks and integer
tensors (numpy's advanced-indexing rules, as PyTorch, but for ints mixed with index tensors: see
torch_rule), views and their gradients, and the errors for out-of-range indices and negative
steps. Each getitem is checked against numpy on the same key; gradients against finite
differences."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grads

import tracejit as tj

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4, 5))

I = np.array  # noqa: E741  (short, for the key table)

KEYS = [
    0, -1, (1, 2), (0, 0, 0), (-3, -4, -5), slice(1, None), (slice(None), slice(1, 3)),
    (Ellipsis, 1), (1, Ellipsis), (None,), (slice(None), None, slice(None), None),
    (Ellipsis, None), (1, Ellipsis, 2), slice(None, None, 2), (slice(None), slice(None, None, 3),
                                                               slice(1, None, 2)),
    slice(10, None), slice(-10, 2), slice(2, 1), (slice(1, 1), 0), (),
    [0, 2], [2, 2, 0], (I([0, 2]),), (I([[0, 1], [2, 2]]),), (I([0, 1]), I([2, 3])),
    (I([0, 1]), slice(1, 3)), (slice(1, 3), I([0, 1])), (slice(None), I([0, 1]), I([2, 3])),
    (I([0, 1]), slice(None), I([2, 3])), (I([0]), I([[1], [2]])), (0, I([1, 2]), I([3, 4])),
    (I([0, 1]), 1, I([3, 4])), (Ellipsis, I([0, -1])), (slice(None), slice(None), I([0, 1]), None),
    (I([-1, -3]),), (I([0, 2]), Ellipsis, I([4, 0])),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k).replace(" ", "") for k in KEYS])
def test_getitem_matches_numpy(key):
    x = tj.tensor(A)
    tkey = tuple(tj.tensor(k) if isinstance(k, np.ndarray) else k for k in key) \
        if isinstance(key, tuple) else key
    out = x[tkey]
    ref = A[key]
    assert tuple(out.shape) == ref.shape
    np.testing.assert_array_equal(out.numpy(), ref)
    np.testing.assert_array_equal(x[key].numpy(), ref)  # numpy arrays and lists as keys too


@pytest.mark.parametrize("key", KEYS, ids=[repr(k).replace(" ", "") for k in KEYS])
def test_getitem_gradient(key):
    def fn(x):
        return x[key]
    check_grads(fn, [A])


def test_bool_masks():
    x = tj.tensor(A)
    m = A > 0
    np.testing.assert_array_equal(x[tj.tensor(m)].numpy(), A[m])
    np.testing.assert_array_equal(x[x > 0].numpy(), A[m])
    rows = np.array([True, False, True])
    np.testing.assert_array_equal(x[tj.tensor(rows)].numpy(), A[rows])
    np.testing.assert_array_equal(x[:, tj.tensor([True, False, True, True])].numpy(),
                                  A[:, [True, False, True, True]])
    np.testing.assert_array_equal(x[0][tj.tensor(m[0])].numpy(), A[0][m[0]])
    assert x[x > 100].shape == (0,)
    with pytest.raises(IndexError, match="mask"):
        x[tj.tensor([True, False])]


def test_advanced_index_gradient_scatter_adds_duplicates():
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tj.tensor([0, 0, 2, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]
    y = tj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (y[[1, 1], [0, 0]] * tj.tensor([2.0, 5.0])).sum().backward()
    assert y.grad.tolist() == [[0.0, 0.0], [7.0, 0.0]]
    z = tj.tensor(A, requires_grad=True)
    z[z > 0].sum().backward()
    assert z.grad.numpy().tolist() == (A > 0).astype(float).tolist()


def test_index_tensor_dtypes():
    x = tj.tensor(A)
    for dt in (tj.int32, tj.int64):
        np.testing.assert_array_equal(x[tj.tensor([2, 0], dtype=dt)].numpy(), A[[2, 0]])
    assert x[tj.tensor(1)].shape == (4, 5)  # a 0-d integer tensor indexes like an int
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        x[tj.tensor([0.0])]
    with pytest.raises(IndexError):
        x[1.5]


def test_basic_indexing_returns_views():
    x = tj.arange(12.0).reshape(3, 4)
    v = x[1]
    v[0] = -1.0
    assert x[1, 0].item() == -1.0
    s = x[:, ::2]
    s.zero_()
    assert x[0].tolist() == [0.0, 1.0, 0.0, 3.0]
    assert not s.is_contiguous()
    c = x[[0, 1]]  # advanced indexing copies
    c[0, 1] = 100.0
    assert x[0, 1].item() == 1.0
    assert x[0]._version is x._version  # views share the version counter


def test_setitem():
    def check(key, value):
        x = tj.tensor(A)
        ref = A.copy()
        x[key] = tj.tensor(value) if isinstance(value, np.ndarray) else value
        ref[key] = value
        np.testing.assert_array_equal(x.numpy(), ref)
    check(0, 7.0)
    check((slice(None), 1), RNG.standard_normal(5))
    check((Ellipsis, 0), RNG.standard_normal((3, 4)))
    check((slice(1, 3), slice(None, None, 2)), 1.5)
    check(([0, 2], [1, 3]), RNG.standard_normal((2, 5)))
    check(A > 0, 0.0)
    x = tj.arange(5)
    x[0] = 2.7  # cast to the tensor's dtype, as PyTorch
    assert x.tolist() == [2, 1, 2, 3, 4]
    x[x > 2] = -1
    assert x.tolist() == [2, 1, 2, -1, -1]
    y = tj.zeros(2, 3)
    y[0] = tj.tensor([1.0, 2.0, 3.0], dtype=tj.float64)
    assert y.dtype is tj.float32 and y[0].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(RuntimeError):
        y[0] = tj.ones(4)


def test_setitem_gradients():
    def fn(x, v):
        y = x * 1.0
        y[1:, [0, 2]] = v * 2.0
        return y.exp()
    check_grads(fn, [RNG.standard_normal((3, 4)), RNG.standard_normal((2, 2))])

    def fn2(x, v):
        y = tj.zeros(3, 4, dtype=tj.float64)
        y[0] = v
        y[2, 1:] = x[0, :3] ** 2
        return y
    check_grads(fn2, [RNG.standard_normal((3, 4)), RNG.standard_normal(4)])

    def fn3(x, v):  # a value with extra leading 1-dims broadcasts into the target
        y = x.clone()
        y[0] = v
        y[1:, :2] = v[..., 1:3] * 3.0
        return y
    check_grads(fn3, [RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))])


def test_index_errors():
    x = tj.tensor(A)
    for key in (3, -4, (0, 4), (0, 0, 5), (0, 0, -6)):
        with pytest.raises(IndexError, match="out of bounds|out of range"):
            x[key]
    with pytest.raises(IndexError, match="out of bounds"):
        x[tj.tensor([0, 3])]
    with pytest.raises(IndexError, match="out of bounds"):
        x[:, [-5]]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0, 0]
    with pytest.raises(IndexError):
        x[..., 0, ...]
    with pytest.raises(IndexError):
        x[3] = 1.0
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[:, ::0]
    with pytest.raises(ValueError, match="step"):
        x[::-1] = 0.0


def test_narrow_split_chunk():
    x = tj.arange(10.0).reshape(5, 2)
    assert x.narrow(0, 1, 2).tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert x.narrow(0, -2, 2).tolist() == [[6.0, 7.0], [8.0, 9.0]]
    assert [t.shape[0] for t in x.split(2)] == [2, 2, 1]
    assert [t.shape[0] for t in x.split([1, 4])] == [1, 4]
    assert [t.shape[0] for t in x.chunk(3)] == [2, 2, 1]
    assert [t.shape[1] for t in x.chunk(2, 1)] == [1, 1]
    with pytest.raises(RuntimeError, match="exceeds dimension size"):
        x.narrow(0, 4, 2)
    with pytest.raises(IndexError, match="out of range"):
        x.narrow(0, 6, 0)
    with pytest.raises(RuntimeError, match="sum exactly"):
        x.split([1, 2])


def test_getitem_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    t = torch.tensor(A)
    for key in KEYS:
        tkey = tuple(torch.tensor(k) if isinstance(k, np.ndarray) else k for k in key) \
            if isinstance(key, tuple) else key
        jkey = tuple(tj.tensor(k) if isinstance(k, np.ndarray) else k for k in key) \
            if isinstance(key, tuple) else key
        np.testing.assert_array_equal(tj.tensor(A)[jkey].numpy(), t[tkey].numpy())


# --- ints mixed with index tensors: PyTorch's placement, not numpy's ---
# PyTorch applies ints (and 0-d integer tensors) as selects before the advanced indexing, so an
# int separated from the index tensors by a slice, None or `...` does not send the index dims to
# the front as numpy does: x[1, :, [1, 3]] is (4, 2) in PyTorch, (2, 4) in numpy.

X4 = RNG.standard_normal((2, 3, 4, 5))

INT_KEYS = [
    (1, slice(None), I([1, 3])), (0, 1, slice(None), I([[1], [2], [0]])),
    (1, Ellipsis, I([[0], [1], [2]])), (1, Ellipsis, [0, 1]), (None, I([0, 1]), slice(None), 1),
    (-1, Ellipsis, I([[0], [1], [2]])), (slice(None), I([0, 1]), slice(None), 1),  # same shape
    (1, slice(None), I([[True, False, True, True, False]] * 4)),
    (1, slice(None), slice(None), I([[0, 1]])), (slice(None), 1, slice(None), I([0, 4]), None),
    (I(1), slice(None), slice(None), I([0, 2])), (slice(None), I([0, 1]), slice(None), I(1)),
    (1, slice(1, 3), I([0, 3]), I([[1], [4]])), (None, 1, None, I([2, 0]), 0),
    # numpy's rule agrees with PyTorch's: ints between or next to the index tensors, index
    # tensors separated from each other (their dims go first either way)
    (I([0, 1]), 1, I([0, 2])), (I([0, 1]), 1, slice(None), I([0, 2])),
    (1, I([0, 1]), Ellipsis, I([0, 1])), (slice(None), 1, I([0, 1]), 2),
    (I([0, 1]), None, 1, I([0, 1])), (1, I([0, 2]), 2, I([0, 1])),
]
INT_IDS = [repr(k).replace(" ", "").replace("array", "") for k in INT_KEYS]


def torch_rule(a: np.ndarray, key: tuple) -> tuple:
    """(view, rest): PyTorch's a[key] is numpy's view[rest], where the view applies the ints
    and 0-d integer arrays of key (so they take no part in numpy's advanced indexing)."""
    used = sum(k.ndim if isinstance(k, np.ndarray) and k.dtype == bool else 1
               for k in key if k is not None and k is not Ellipsis)
    first, rest = [], []
    for k in key:
        if k is Ellipsis:
            first += [slice(None)] * (a.ndim - used)
            rest += [slice(None)] * (a.ndim - used)
        elif k is None:
            rest.append(None)
        elif isinstance(k, int) or (isinstance(k, np.ndarray) and k.ndim == 0):
            first.append(int(k))
        elif isinstance(k, np.ndarray) and k.dtype == bool:
            first += [slice(None)] * k.ndim
            rest.append(k)
        else:
            first.append(slice(None))
            rest.append(k)
    return a[tuple(first)], tuple(rest)


def _tj_key(key, **kw):
    return tuple(tj.tensor(k, **kw) if isinstance(k, np.ndarray) else k for k in key)


@pytest.mark.parametrize("key", INT_KEYS, ids=INT_IDS)
def test_ints_with_index_tensors_place_dims_as_torch(key):
    view, rest = torch_rule(X4, key)
    ref = view[rest]
    out = tj.tensor(X4)[_tj_key(key)]
    assert tuple(out.shape) == ref.shape
    np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize("key", INT_KEYS, ids=INT_IDS)
def test_ints_with_index_tensors_setitem(key):
    view, rest = torch_rule(X4, key)
    for value in (RNG.standard_normal(view[rest].shape), RNG.standard_normal(
            view[rest].shape[-1:]), 2.5):
        ref = X4.copy()
        torch_rule(ref, key)[0][rest] = value          # the view writes into ref
        for grad in (False, True):                     # a plain write, and one autograd records
            x = tj.tensor(X4 * 1.0, requires_grad=grad)
            y = x * 1.0 if grad else x
            y[_tj_key(key)] = tj.tensor(value) if isinstance(value, np.ndarray) else value
            np.testing.assert_array_equal(y.detach().numpy(), ref)


@pytest.mark.parametrize("key", INT_KEYS, ids=INT_IDS)
def test_ints_with_index_tensors_backward(key):
    view, rest = torch_rule(X4, key)
    w = RNG.standard_normal(view[rest].shape)
    expected = np.zeros_like(X4)
    np.add.at(torch_rule(expected, key)[0], rest, w)   # repeated indices add up
    x = tj.tensor(X4, requires_grad=True)
    (x[_tj_key(key)] * tj.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected)

    x = tj.tensor(X4, requires_grad=True)              # setitem: the value's gradient, and
    v = tj.tensor(w, requires_grad=True)               # none where x was overwritten
    y = x * 1.0
    y[_tj_key(key)] = v
    (y * tj.tensor(X4)).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), view[rest])
    kept = np.ones_like(X4)
    torch_rule(kept, key)[0][rest] = 0.0
    np.testing.assert_allclose(x.grad.numpy(), X4 * kept)


def test_ints_with_index_tensors_compiled():
    a = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    get = tj.compile(lambda x, i: x[1, :, i])

    def put(x, i, v):
        y = x * 1.0
        y[None, 2, ..., i] = v
        return y

    cput = tj.compile(put)
    for i in (np.array([1, 3]), np.array([4, 0])):     # twice: no baked index values
        np.testing.assert_array_equal(get(tj.tensor(a), tj.tensor(i)).numpy(), a[1][:, i])
        x = tj.tensor(a, requires_grad=True)
        w = RNG.standard_normal((4, 2)).astype(np.float32)
        (get(x, tj.tensor(i)) * tj.tensor(w)).sum().backward()
        expected = np.zeros_like(a)
        expected[1][:, i] = w
        np.testing.assert_array_equal(x.grad.numpy(), expected)
        v = RNG.standard_normal((1, 4, 2)).astype(np.float32)
        ref = a.copy()
        ref[2][:, i] = v[0]
        np.testing.assert_array_equal(cput(tj.tensor(a), tj.tensor(i), tj.tensor(v)).numpy(),
                                      ref)
    assert get.compiles == 2 and cput.compiles == 1   # get: with and without grad


def test_ints_with_index_tensors_against_torch_when_installed():
    """Random keys of ints, 0-d tensors, slices, None, `...`, index tensors and masks."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5)
    a = rng.standard_normal(shape)
    for _ in range(400):
        key, d = [], 0
        ell = rng.random() < 0.3
        ishape = [(2,), (3, 1), (1,)][rng.integers(3)]     # index shapes that broadcast
        while d < len(shape) and rng.random() < 0.85:
            r = rng.random()
            if r < 0.1:
                key.append(None)
                continue
            if ell and r < 0.2:
                key.append(Ellipsis)
                ell = False
                d = len(shape) - (len(shape) - d) // 2
                continue
            n = shape[d]
            if r < 0.45:
                key.append(int(rng.integers(-n, n)))
            elif r < 0.55:
                key.append(np.array(rng.integers(0, n)))
            elif r < 0.65:
                key.append(slice(int(rng.integers(0, n)), None, int(rng.integers(1, 3))))
            elif r < 0.75 and d + 1 < len(shape):
                mask = np.zeros(n * shape[d + 1], bool)
                mask[rng.choice(mask.size, 2, replace=False)] = True   # 2 picks, as (2,)
                key.append(mask.reshape(n, shape[d + 1]))
                d += 1
            else:
                key.append(rng.integers(-n, n, size=ishape))
            d += 1
        key = tuple(key)
        ref = torch.tensor(a)[tuple(torch.tensor(k) if isinstance(k, np.ndarray) else k
                                    for k in key)].numpy()
        view, rest = torch_rule(a, key)
        np.testing.assert_array_equal(view[rest], ref, err_msg=repr(key))
        np.testing.assert_array_equal(tj.tensor(a)[_tj_key(key)].numpy(), ref, err_msg=repr(key))


@pytest.mark.parametrize("flag", [True, False])
def test_zero_dim_bool_index_adds_a_dim_of_size_one_or_zero(flag):
    """torch: x[tensor(True)] is x with a new leading dim of size 1; False gives size 0 (and
    selects nothing to write)."""
    a = np.arange(6.0).reshape(2, 3)
    x, m = tj.tensor(a), tj.tensor(flag)
    n = 1 if flag else 0
    assert tuple(x[m].shape) == (n, 2, 3)
    assert tuple(x[1, m].shape) == (n, 3)
    assert tuple(x[:, m, None, 0:2].shape) == (2, n, 1, 2)
    assert tuple(x[..., m].shape) == (2, 3, n)
    if flag:
        np.testing.assert_array_equal(x[m].numpy(), a[None])
    x[m] = 7.0
    np.testing.assert_array_equal(x.numpy(), np.full_like(a, 7.0) if flag else a)
    g = tj.tensor(a, requires_grad=True)
    (g[m] * 2.0).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), np.full_like(a, 2.0 * n))
    with pytest.raises(IndexError, match="0-d bool index together with index tensors"):
        x[:, m, tj.tensor([0, 2])]
