"""Behaviours of the autograd API, modules, layers and schedulers where tracejit differed from
torch 2.13 (found by comparing the two); each test states torch's behaviour."""
import numpy as np
import pytest

import tracejit as tj

F = tj.nn.functional


def test_backward_inputs_fills_the_grad_of_a_non_leaf():
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    (y * y).sum().backward(inputs=[y])
    assert y.grad.tolist() == [4.0, 8.0, 12.0] and x.grad is None


def test_autograd_grad_of_a_repeated_input_and_hooks_of_leaves_not_differentiated():
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for unused in (False, True):
        g = tj.autograd.grad((x * 6.0).sum(), [x, x], allow_unused=unused)
        assert [t.tolist() for t in g] == [[6.0] * 3, [6.0] * 3]
    w = tj.tensor([1.0, 1.0, 1.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(1))
    tj.autograd.grad((x * w).sum(), w)
    (x * w).sum().backward(inputs=[w])
    assert calls == [] and x.grad is None and w.grad.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("leaf", [True, False])
def test_a_hook_may_not_change_the_gradients_shape_or_dtype(leaf):
    for hook, what in ((lambda g: g[:1], "size"), (lambda g: g.double(), "type")):
        x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x if leaf else x * 2.0
        y.register_hook(hook)
        with pytest.raises(RuntimeError, match=f"has changed the {what} of value"):
            (y * y).sum().backward()


def test_grad_mode_decorators_cover_a_generators_body():
    x = tj.tensor([1.0, 2.0], requires_grad=True)

    @tj.no_grad()
    def gen():
        sent = yield (x * 2.0).requires_grad, tj.is_grad_enabled()
        yield sent, tj.is_grad_enabled()
    g = gen()
    assert next(g) == (False, False) and tj.is_grad_enabled()
    assert g.send(5) == (5, False) and tj.is_grad_enabled()


def test_grad_setter_checks_shape_and_dtype():
    x = tj.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="gradient of size"):
        x.grad = tj.zeros(4)
    with pytest.raises(RuntimeError, match="gradient with dtype 'float64'"):
        x.grad = tj.zeros(3, dtype=tj.float64)
    x.grad = tj.ones(3)
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_module_names_are_not_shared_between_parameters_and_buffers():
    m = tj.nn.Module()
    m.register_buffer("a", tj.ones(1))
    with pytest.raises(KeyError, match="attribute 'a' already exists"):
        m.register_parameter("a", tj.nn.Parameter(tj.zeros(1)))
    m.a = tj.nn.Parameter(tj.zeros(1))        # assignment replaces the buffer
    assert list(m.state_dict()) == ["a"] and list(dict(m.named_buffers())) == []


@pytest.mark.parametrize("compiled", [False, True])
def test_embedding_rejects_negative_indices(compiled):
    e = tj.nn.Embedding(3, 2)
    f = tj.compile(lambda i: e(i)) if compiled else e
    assert tuple(f(tj.tensor([0, 2])).shape) == (2, 2)
    for bad in ([-1], [3]):
        with pytest.raises(IndexError):
            f(tj.tensor(bad))


@pytest.mark.parametrize("name", ["LeakyReLU", "ELU", "SiLU", "ReLU6"])
def test_in_place_activations_train(name):
    """The in-place forms write their result into the input and still have a backward."""
    v = np.array([[-1.0, 2.0, -3.0, 0.5, 7.0]], np.float32)
    grads = []
    for inplace in (False, True):
        x = tj.tensor(v, requires_grad=True)
        y = x * 1.0
        out = getattr(tj.nn, name)(inplace=inplace)(y)
        assert (out is y) == inplace
        (out * tj.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0])
    x = tj.tensor([[1.0, 2.0]], requires_grad=True)
    y = x * 1.0
    F.dropout(y, 0.5, True, inplace=True).sum().backward()
    assert set(x.grad.numpy().ravel().tolist()) <= {0.0, 2.0}


def _lrs(make, last_epoch=-1, jump=None):
    p = tj.nn.Parameter(tj.zeros(2))
    opt = tj.optim.SGD([p], lr=0.1)
    if last_epoch != -1:
        opt.param_groups[0]["initial_lr"] = 0.2
    s = make(opt, last_epoch)
    out = [opt.param_groups[0]["lr"]]
    if jump is not None:
        s.step(jump)
        out.append(opt.param_groups[0]["lr"])
    for _ in range(3):
        opt.step()
        s.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_schedulers_resume_without_moving_and_jump_to_an_epoch():
    S = tj.optim.lr_scheduler
    exp = _lrs(lambda o, e: S.ExponentialLR(o, 0.5, last_epoch=e), last_epoch=4)
    np.testing.assert_allclose(exp, [0.1, 0.05, 0.025, 0.0125])
    cos = _lrs(lambda o, e: S.CosineAnnealingLR(o, T_max=6, last_epoch=e), last_epoch=4)
    assert cos[0] == 0.1
    multi = _lrs(lambda o, e: S.MultiStepLR(o, [2, 4], 0.5, last_epoch=e), jump=5)
    np.testing.assert_allclose(multi[:2], [0.1, 0.025])
    exp = _lrs(lambda o, e: S.ExponentialLR(o, 0.5, last_epoch=e), jump=5)
    np.testing.assert_allclose(exp[:2], [0.1, 0.1 * 0.5 ** 5])


def test_augmented_assignments_update_in_place():
    a = tj.tensor([[2.0, 3.0], [4.0, 5.0]])
    v = a[0]
    v **= 2
    assert a.tolist() == [[4.0, 9.0], [4.0, 5.0]]
    m = tj.tensor([True, False])
    alias = m
    m |= tj.tensor([False, True])
    m &= tj.tensor([True, True])
    m ^= tj.tensor([False, True])
    assert alias is m and alias.tolist() == [True, False]
    x = tj.tensor([7, 8])
    y = x
    y //= 2
    y %= 3
    assert y is x and x.tolist() == [0, 1]
    with pytest.raises(RuntimeError, match="can't be cast"):
        x **= 0.5


def test_view_dtype_reinterprets_bits_and_shares_memory():
    x = tj.tensor([1.0, -2.0])
    v = x.view(tj.int32)
    assert v.tolist() == [1065353216, -1073741824]
    v[0] = 0
    assert x.tolist() == [0.0, -2.0]
    assert tuple(tj.tensor([1, 2], dtype=tj.int32).view(tj.int64).shape) == (1,)


def test_float16_mean_and_var_accumulate_in_float32():
    x = tj.full((1000,), 100.0, dtype=tj.float16)
    assert x.mean().item() == 100.0 and x.mean().dtype is tj.float16
    assert x.var().item() == 0.0
    assert F.mse_loss(x, x * 0.0).item() == 10000.0
    assert np.isfinite(F.layer_norm(x.reshape(1, 1000), (1000,)).float().numpy()).all()


def test_factories_and_reductions_take_dtypes_as_torch():
    assert tj.arange(tj.tensor(0.5), tj.tensor(2.0)).tolist() == [0.5, 1.5]
    assert tj.arange(0, 2, tj.tensor(0.5)).tolist() == [0.0, 0.5, 1.0, 1.5]
    assert tj.zeros(2, dtype=float).dtype is tj.float64      # Python float is float64
    assert tj.tensor([1, 2]).to(float).dtype is tj.float64
    s = tj.tensor([100, 100]).sum(dtype=tj.int8)
    assert s.dtype is tj.int8 and s.item() == -56            # accumulated in int8: wraps
    assert tj.tensor([1, 2]).sum(dtype=tj.bool).item() is True
    assert tj.tensor([[1, 2], [3, 4]]).prod(dtype=tj.int32).dtype is tj.int32
    for fill in (lambda: tj.full((2,), float("inf"), dtype=tj.int64),
                 lambda: tj.zeros(3, dtype=tj.int32).masked_fill(tj.tensor([True] * 3), np.nan),
                 lambda: tj.ones(2, dtype=tj.int32).new_full((2,), float("nan"))):
        with pytest.raises(RuntimeError, match="without overflow"):
            fill()
    a = np.array([1.0, 2.0])
    t = tj.as_tensor(a)
    a[0] = 9.0
    assert t.tolist() == [9.0, 2.0]                          # shares memory
    assert tuple(tj.cat([tj.zeros(2, 3), tj.tensor([])]).shape) == (2, 3)


def test_is_contiguous_of_a_traced_value_breaks_the_graph():
    """The trace does not know a traced value's layout: the call runs eagerly (warning)."""
    f = tj.compile(lambda x: x * 2.0 if x.is_contiguous() else x * 3.0)
    x = tj.arange(16.0).reshape(4, 4)
    with pytest.warns(RuntimeWarning, match="is_contiguous"):
        assert f(x.t())[0].tolist() == [0.0, 12.0, 24.0, 36.0]
    assert f(x)[0].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_list_elements_keep_their_dtypes_and_mistakes_torch_rejects_raise():
    assert tj.tensor([tj.tensor(0.1, dtype=tj.float64)]).dtype is tj.float64
    assert tj.tensor([np.float64(0.1)]).dtype is tj.float64
    assert tj.tensor([tj.tensor(1, dtype=tj.int32)] * 2).dtype is tj.int32
    assert tj.tensor([np.uint8(1)]).dtype is tj.uint8
    assert tj.tensor([1, 2.5]).dtype is tj.float32
    for bad, exc in ((lambda: tj.rand(2, dtype=tj.int64), NotImplementedError),
                     (lambda: tj.randn(2, dtype=tj.int64), NotImplementedError),
                     (lambda: tj.tensor([1, 2]).softmax(0), NotImplementedError),
                     (lambda: tj.randperm(-1), RuntimeError),
                     (lambda: tj.zeros(3).masked_fill(tj.tensor([True] * 3), tj.tensor([1.0])),
                      RuntimeError),
                     (lambda: tj.add(tj.tensor([1]), tj.tensor([1]), alpha=0.5), RuntimeError)):
        with pytest.raises(exc):
            bad()
    assert tj.tensor([1, 2]).softmax(0, dtype=tj.float32).sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("compiled", [False, True])
def test_sign_of_nan_and_negative_zero_is_zero(compiled):
    f = tj.compile(lambda x: x.sign()) if compiled else (lambda x: x.sign())
    x = tj.tensor([float("nan"), -0.0, 0.0, -2.0, 3.0])
    for _ in range(2):
        out = f(x).numpy()
        assert out.tolist() == [0.0, 0.0, 0.0, -1.0, 1.0] and not np.signbit(out[1])


def test_size_slices_and_sums_stay_sizes():
    s = tj.ones(2, 3, 4).shape
    assert isinstance(s[1:], tj.Size) and s[1:] == (3, 4)
    assert isinstance(s + (5,), tj.Size) and isinstance((1,) + s, tj.Size)
    assert (1,) + s == (1, 2, 3, 4) and type(s[0]) is int
    with pytest.raises(TypeError):
        s + [5]


def test_numpy_arguments_of_a_compiled_function_are_not_baked_in():
    x = tj.tensor([1.0, 2.0])
    cf = tj.compile(lambda x, s: x * s)
    for s in (1.0, 2.0, 3.0):
        assert cf(x, np.float64(s)).tolist() == [s, 2 * s]
        assert cf(x, np.int64(int(s))).tolist() == [s, 2 * s]
    ca = tj.compile(lambda x, a: x + a[0])
    a = np.array([1.0])
    assert ca(x, a).tolist() == [2.0, 3.0]
    a[0] = 10.0
    assert ca(x, a).tolist() == [11.0, 12.0] and ca.compiles == 1


def test_one_hot_normalize_pad_and_pooling_as_torch():
    f = tj.compile(lambda x: F.one_hot(x, 3))
    with pytest.warns(RuntimeWarning, match="one_hot"):         # checked eagerly
        assert f(tj.tensor([0, 2])).tolist() == [[1, 0, 0], [0, 0, 1]]
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        f(tj.tensor([0, 5]))
    x = tj.tensor([[0.5, -2.0, 1.0], [0.1, 0.2, 0.3]])
    np.testing.assert_allclose(F.normalize(x, p=float("inf")).numpy(),
                               [[0.25, -1.0, 0.5], [1 / 3, 2 / 3, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(F.normalize(x, p=0).numpy(), x.numpy() / 3.0, rtol=1e-6)
    assert F.pad(tj.ones(2), (1, 1), value=None).tolist() == [0.0, 1.0, 1.0, 0.0]
    big = tj.tensor([[[[16777217, 1], [2, 3]]]])
    m = F.max_pool2d(big, 2)
    assert m.dtype is tj.int64 and m.item() == 16777217
    assert F.max_pool2d(big, 2, padding=1).tolist() == [[[[16777217, 1], [2, 3]]]]
    assert F.avg_pool2d(tj.tensor([[[[-7, -2], [1, 3]]]]), 2).item() == -1    # truncates


def test_invalid_conv_and_pool_settings_raise_and_empty_softmax():
    x, w = tj.randn(1, 1, 5, 5), tj.randn(1, 1, 3, 3)
    for bad in (lambda: F.conv2d(x, w, padding=-1), lambda: F.conv2d(x, w, dilation=0),
                lambda: F.conv2d(x, w, stride=0), lambda: F.max_pool2d(x, 2, padding=-1),
                lambda: F.max_pool2d(x, 0), lambda: F.avg_pool2d(x, 2, divisor_override=0),
                lambda: F.conv2d(x, w, stride=(1, 1, 1))):
        with pytest.raises(RuntimeError):
            bad()
    assert tj.zeros(0).softmax(0).tolist() == [] and tj.zeros(0).log_softmax(0).tolist() == []


def test_bool_argmax_0d_cat_none_element_and_negative_eye_raise_torchs_error():
    for f in (lambda: tj.tensor([True, False]).argmax(), lambda: tj.tensor([True]).argmin(0),
              lambda: tj.cat([tj.tensor(1.0), tj.tensor(2.0)]), lambda: tj.tensor(None),
              lambda: tj.tensor([1.0, None]), lambda: tj.eye(-1), lambda: tj.eye(2, -1)):
        with pytest.raises(RuntimeError):
            f()
    with pytest.raises(TypeError):
        tj.tensor("text")


def test_all_and_any_of_uint8_stay_uint8_eager_and_compiled():
    x = tj.tensor([[1, 0], [2, 3]], dtype=tj.uint8)
    for fn in (lambda t: (t.all(1), t.any(), t.all(0, keepdim=True)),
               tj.compile(lambda t: (t.all(1), t.any(), t.all(0, keepdim=True)))):
        a, b, c = fn(x)
        assert (a.dtype, b.dtype, c.dtype) == (tj.uint8,) * 3
        assert (a.tolist(), b.item(), c.tolist()) == ([0, 1], 1, [[1, 0]])
    assert tj.tensor([1.0, 0.0]).all().dtype == tj.bool


def test_pow_of_one_half_and_minus_one_half_is_torchs_sqrt_and_rsqrt_eager_and_compiled():
    """torch computes x ** 0.5 as sqrt and x ** -0.5 as rsqrt: at -inf both give nan, and at
    -0.0 they give -0.0 and -inf (C's pow: inf, +0.0, +inf)."""
    x = [-np.inf, -4.0, -0.0, 0.0, 4.0, np.inf]
    want = {0.5: [np.nan, np.nan, -0.0, 0.0, 2.0, np.inf],
            -0.5: [np.nan, np.nan, -np.inf, np.inf, 0.5, 0.0]}
    for e, w in want.items():
        for fn in (lambda t, e=e: t ** e, tj.compile(lambda t, e=e: t ** e)):
            got = fn(tj.tensor(x)).numpy()
            np.testing.assert_array_equal(got, np.float32(w))
            ok = ~np.isnan(got)
            assert list(np.signbit(got[ok])) == list(np.signbit(np.float32(w))[ok])


def test_integer_trunc_division_is_exact_and_raises_on_zero():
    a = [123456789, 16777217, 2**40 + 1, -7, 7, 0, -9]
    for fn in (lambda x, y: tj.div(x, y, rounding_mode="trunc"),
               tj.compile(lambda x, y: tj.div(x, y, rounding_mode="trunc"))):
        assert fn(tj.tensor(a), 1).tolist() == a
        assert fn(tj.tensor(a), tj.tensor([2, -2, 3, 2, -2, 5, -4])).tolist() == \
            [61728394, -8388608, 366503875925, -3, -3, 0, 2]
    q = tj.div(tj.tensor([7, -7], dtype=tj.int32), 2, rounding_mode="trunc")
    assert q.tolist() == [3, -3] and q.dtype == tj.int32
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tj.div(tj.tensor([7, -7]), tj.tensor([0, 1]), rounding_mode="trunc")


def test_clamp_promotes_with_its_bounds_and_refuses_numbers_the_dtype_cannot_hold():
    i8 = tj.tensor([5, -3], dtype=tj.int8)
    r = tj.clamp(i8, min=tj.tensor([300.5, -1000.0]))
    assert r.dtype == tj.float32 and r.tolist() == [300.5, -3.0]
    r = tj.clamp(i8, min=tj.tensor([300, -1000]))
    assert r.dtype == tj.int64 and r.tolist() == [300, -3]
    r = tj.tensor([1, 5]).clamp(max=float("inf"))
    assert r.dtype == tj.float32 and r.tolist() == [1.0, 5.0]
    assert tj.tensor([5, 3], dtype=tj.uint8).clamp(min=-1).tolist() == [255, 255]
    for f in (lambda: i8.clamp(-1000, 1000), lambda: i8.clamp(min=300),
              lambda: tj.tensor([1], dtype=tj.int32).clamp(min=2**31),
              lambda: tj.where(tj.tensor([True, False]), i8, 1000),
              lambda: i8.masked_fill(tj.tensor([True, False]), 1000),
              lambda: tj.zeros(2).fill_(1e39), lambda: tj.zeros(2, dtype=tj.int8).fill_(127.9),
              lambda: tj.tensor([300], dtype=tj.int8), lambda: tj.tensor([-256], dtype=tj.uint8)):
        with pytest.raises(RuntimeError, match="without overflow"):
            f()
    assert tj.zeros(2, dtype=tj.uint8).fill_(-1).tolist() == [255, 255]      # wraps, as torch
    assert tj.tensor([[-1, 3]], dtype=tj.uint8).tolist() == [[255, 3]]


def test_take_along_dim_broadcasts_flattens_and_counts_negative_indices_from_the_end():
    x = tj.arange(6.0).reshape(2, 3).requires_grad_(True)
    r = tj.take_along_dim(x, tj.tensor([[0, 2]]), dim=1)
    assert r.tolist() == [[0.0, 2.0], [3.0, 5.0]]
    r.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    assert tj.take_along_dim(tj.arange(3.0), tj.tensor([-1]), 0).tolist() == [2.0]
    assert tj.take_along_dim(tj.arange(6.0).reshape(2, 3), tj.tensor([5, 0])).tolist() == \
        [5.0, 0.0]


def test_zero_d_and_bool_edge_cases_of_nonzero_gather_flip_isinf_and_format():
    assert tuple(tj.tensor(3.0).nonzero().shape) == (1, 0)
    assert tuple(tj.tensor(0.0).nonzero().shape) == (0, 0)
    assert tj.gather(tj.tensor(3.0), 0, tj.tensor(0)).item() == 3.0
    assert tj.tensor(3.0).flip(0).item() == 3.0
    with pytest.raises(IndexError):
        tj.tensor(3.0).flip(1)
    assert tj.isinf(tj.tensor([True])).tolist() == [False]
    assert f"{tj.tensor(3.14159):.2f}" == "3.14"
    with pytest.raises(TypeError):
        f"{tj.ones(2):.2f}"
    with pytest.raises(ValueError):
        int(tj.ones(3))


def test_uint8_index_is_a_mask_and_other_small_ints_are_refused():
    a = tj.arange(6.0).reshape(3, 2)
    with pytest.warns(UserWarning, match="uint8"):
        assert a[tj.tensor([1, 0, 1], dtype=tj.uint8)].tolist() == [[0.0, 1.0], [4.0, 5.0]]
    for k in (tj.tensor([1, 0], dtype=tj.int8), tj.tensor([1.0, 0.0])):
        with pytest.raises(IndexError, match="long, int, byte or bool"):
            a[k]


def test_relu_passes_the_gradient_at_nan_as_torch():
    for f in (lambda x: x.relu().sum(), tj.compile(lambda x: x.relu().sum())):
        x = tj.tensor([float("nan"), -1.0, 0.0, 2.0], requires_grad=True)
        f(x).backward()
        assert x.grad.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_torch_keyword_forms_size_end_other_and_round_decimals():
    assert tuple(tj.zeros(size=(2, 3)).shape) == (2, 3)
    assert tj.arange(end=3).tolist() == [0, 1, 2]
    assert tj.ones(2).mul(other=3.0).tolist() == [3.0, 3.0]
    x = tj.tensor([1.2345, -2.5, 123.456, 0.5])
    np.testing.assert_allclose(tj.round(x, decimals=2).numpy(), [1.23, -2.5, 123.46, 0.5],
                               rtol=1e-6)
    assert x.round(decimals=-1).tolist() == [0.0, -0.0, 120.0, 0.0]
    assert x.round().tolist() == [1.0, -2.0, 123.0, 0.0]          # half to even
    for f in (lambda: tj.zeros(), lambda: tj.zeros(2.0), lambda: tj.ones(2, 3.0)):
        with pytest.raises(TypeError):
            f()


def test_compiled_integer_casts_carry_no_gradient():
    f = lambda x: x * x.long()              # noqa: E731
    for g in (f, tj.compile(f)):
        x = tj.tensor([0.5, -1.7, 2.2], requires_grad=True)
        g(x).sum().backward()
        assert x.grad.tolist() == [0.0, -1.0, 2.0]
    assert not tj.compile(lambda x: x.long() + 0.5)(tj.tensor([0.5], requires_grad=True)) \
        .requires_grad


def test_add_and_sub_alpha_scale_in_the_promoted_dtype():
    b = tj.tensor([True, False])
    r = tj.add(b, b, alpha=2)
    assert r.dtype == tj.bool and r.tolist() == [True, False]
    r = tj.add(tj.tensor(3, dtype=tj.int32), b, alpha=2)
    assert r.dtype == tj.int32 and r.tolist() == [5, 3]
    assert tj.sub(tj.ones(2), tj.tensor([2, 4]), alpha=0.5).tolist() == [0.0, -1.0]
    with pytest.raises(RuntimeError, match="alpha must not be a floating"):
        tj.add(tj.tensor([1, 2]), tj.tensor([1, 1]), alpha=0.5)


def test_empty_splits_contiguous_reductions_setitem_broadcast_and_batch_errors():
    assert [tuple(t.shape) for t in tj.zeros(0).split(2)] == [(0,)]
    assert [tuple(t.shape) for t in tj.zeros(2, 0).chunk(3, 1)] == [(2, 0)] * 3
    x = tj.arange(24.0).reshape(4, 3, 2).permute(2, 1, 0)
    assert x.sum(1).is_contiguous() and x.sum(1).view(8).tolist()[:2] == [6.0, 24.0]
    y = tj.zeros(3)
    y[0] = tj.tensor([5.0])                 # (1,) broadcasts to the 0-d region, as torch
    assert y.tolist() == [5.0, 0.0, 0.0]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        tj.zeros(3, 4)[0] = tj.arange(5.0)
    for f in (lambda a, b: a @ b, tj.compile(lambda a, b: a @ b)):
        with pytest.raises(RuntimeError):
            f(tj.ones(2, 3, 4), tj.ones(3, 4, 5))
    assert abs(tj.logsumexp(tj.tensor([True, False]), 0).item() - 1.3132617) < 1e-6


def test_compiled_in_place_update_of_an_expanded_argument_raises_eagers_error():
    f = tj.compile(lambda a: a.add_(1) * 1)
    base = tj.tensor([[1.0, 2.0]])
    with pytest.raises(RuntimeError, match="single memory location"):
        f(base.expand(2, 2))
    assert base.tolist() == [[1.0, 2.0]]


def test_mul_and_div_by_a_constant_keep_only_what_the_gradient_reads():
    """torch's mul keeps `a` only for b's gradient: modifying y in place after `y * 2` or
    `y / 2` is fine (eager and compiled); after `y * w` with w requiring grad it is refused."""
    def k(x, op):
        y = x * 1
        a = op(y)
        y.add_(1)
        return (a + y).sum()
    for op, want in ((lambda y: y * 2, 3.0), (lambda y: y / 2, 1.5)):
        for f in (lambda x, op=op: k(x, op), tj.compile(lambda x, op=op: k(x, op))):
            x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
            f(x).backward()
            assert x.grad.tolist() == [want] * 3
    x, w = tj.tensor([1.0, 2.0], requires_grad=True), tj.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        k(x, lambda y: y * w).backward()


def test_norm_and_atan2_gradients_at_zero_and_float16_norms():
    for vals, p, want in (([0.0, 1.0, -1.0], 0.5, [0.0, 2.0, -2.0]), ([0.0, 0.0], 3, [0.0, 0.0]),
                          ([0.0, 2.0], -1, [0.0, 0.0])):
        for f in (lambda x, p=p: tj.linalg.vector_norm(x, p),
                  tj.compile(lambda x, p=p: tj.linalg.vector_norm(x, p))):
            x = tj.tensor(vals, dtype=tj.float64, requires_grad=True)
            f(x).backward()
            assert x.grad.tolist() == want
    assert tj.linalg.vector_norm(tj.tensor([300.0, 300.0]).half()).item() == 424.25
    y, x = tj.tensor([0.0, 1.0], requires_grad=True), tj.tensor([0.0, 1.0], requires_grad=True)
    tj.atan2(y, x).sum().backward()
    assert y.grad.tolist() == [0.0, 0.5] and x.grad.tolist() == [0.0, -0.5]


def test_alpha_overflow_movedim_of_0d_and_multistep_milestones_as_torch():
    a = tj.tensor([1, 2], dtype=tj.int32)
    with pytest.raises(RuntimeError, match="without overflow"):
        tj.add(a, a, alpha=2**33)
    assert tj.movedim(tj.tensor(3.0), 0, -1).item() == 3.0
    opt = tj.optim.SGD([tj.ones(1, requires_grad=True)], lr=1.0)
    s = tj.optim.lr_scheduler.MultiStepLR(opt, [2, 2, 5], gamma=0.5)
    lrs = []
    for _ in range(6):
        opt.step()
        s.step()
        lrs.append(s.get_last_lr()[0])
    assert lrs == [1.0, 0.25, 0.25, 0.25, 0.125, 0.125]
    assert dict(s.state_dict()["milestones"]) == {2: 2, 5: 1}       # a Counter, as torch's
    s.load_state_dict({**s.state_dict(), "milestones": {3: 1}})     # as tj.load gives it
    assert s.milestones[3] == 1 and s.milestones[4] == 0


def test_isclose_of_large_ints_half_round_decimals_trunc_dtypes_and_setitem_numbers():
    assert tj.isclose(tj.tensor([2**62 + 1]), tj.tensor([2**62]), rtol=0, atol=0).tolist() == \
        [False]
    assert tj.isclose(tj.tensor([True]), tj.tensor([False]), atol=1).tolist() == [True]
    r = tj.round(tj.tensor([-3.0859375, 8.9453125]).half(), decimals=2)
    assert r.dtype == tj.float16 and r.float().tolist() == [-3.08984375, 8.953125]
    q = tj.div(tj.tensor([7, -7], dtype=tj.int32), tj.tensor(2), rounding_mode="trunc")
    assert q.dtype == tj.int32 and q.tolist() == [3, -3]
    assert tj.div(tj.tensor([True, False]), tj.tensor([2, 2]), rounding_mode="trunc").tolist() \
        == [0, 0]
    u = tj.zeros(2, dtype=tj.uint8)
    u[0] = -1
    assert u.tolist() == [255, 0]
    for dt, v in ((tj.int8, 300), (tj.int64, float("nan"))):
        with pytest.raises(RuntimeError, match="without overflow"):
            tj.zeros(2, dtype=dt)[0] = v


def test_in_place_forms_and_function_aliases_of_the_new_ops():
    x = tj.tensor([[1.0, -2.0], [3.0, float("nan")]])
    a, b, c = x.clone(), x.clone(), x.clone()
    a.tril_()
    b.triu_(1)
    c.nan_to_num_(0.5)
    assert a[0].tolist() == [1.0, 0.0] and b.tolist() == [[0.0, -2.0], [0.0, 0.0]]
    assert c.tolist() == [[1.0, -2.0], [3.0, 0.5]]
    e = tj.tensor([1.26, 2.5])
    e.round_(decimals=1)
    np.testing.assert_allclose(e.numpy(), [1.3, 2.5], rtol=1e-6)
    assert tj.ger(tj.tensor([1.0, 2.0]), tj.tensor([3.0])).tolist() == [[3.0], [6.0]]
    assert tj.divide(tj.tensor([7]), 2, rounding_mode="floor").tolist() == [3]
    assert tj.rsub(tj.tensor([1.0, 2.0]), 10.0, alpha=2).tolist() == [8.0, 6.0]
    assert abs(tj.arctan2(tj.tensor([1.0]), tj.tensor([1.0])).item() - np.pi / 4) < 1e-6


def test_nan_to_num_casts_its_replacements_and_0d_split_and_isclose_errors():
    r = tj.nan_to_num(tj.tensor([float("inf"), float("nan")]), posinf=1e300, nan=2.0)
    assert r.tolist() == [float("inf"), 2.0]            # 1e300 is inf in float32, as torch
    for f, err in ((lambda: tj.tensor(3.0).split(1), RuntimeError),
                   (lambda: tj.tensor(3.0).chunk(2), RuntimeError),
                   (lambda: tj.isclose(tj.ones(1), 1.5), TypeError)):
        with pytest.raises(err):
            f()
