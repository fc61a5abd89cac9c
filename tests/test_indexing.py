"""`tensor[key]` and `tensor[key] = value`: ints, slices, None, Ellipsis, bool masks and integer
tensors (numpy's advanced-indexing rules, as PyTorch), views and their gradients, and the errors
for out-of-range indices and negative steps. Each getitem is checked against numpy on the same
key; gradients against finite differences."""
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
    with pytest.raises(IndexError, match="long, int or bool"):
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
