"""tracejit.compile: tracing, generated backward, guards, recompiles, graph breaks, mutation,
closed-over tensors, nested compile, debugging aids. Backends: the reference interpreter and,
when available, LLVM (every test runs on both)."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.jit.backends import default_backend

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _grads(fn, *xs):
    for x in xs:
        x.grad = None
    out = fn(*xs)
    out.backward()
    return out.detach().numpy().copy(), [x.grad.numpy().copy() for x in xs]


def _leaves(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [tj.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
            for s in shapes]


def gelu_chain(x, w, b):
    z = x * w + b
    return (0.5 * z * (1.0 + (0.7978845608 * (z + 0.044715 * z ** 3)).tanh())).sum()


def softmax_loss(x, y):
    return (x.softmax(-1) * y).sum()


def norm_loss(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (((x - mu) / (var + 1e-5).sqrt() * w + b) * x).sum()


def mlp(x, w1, w2):
    return ((x @ w1).relu() @ w2).logsumexp(-1).mean()


def indexing(x, w):
    return (x[1:, ::2] * w[None, :2]).amax(0).sum() + x[tj.tensor([0, 0, 2])].sum()


CASES = [
    (gelu_chain, [(64,), (64,), (64,)]),
    (gelu_chain, [(8, 16), (16,), (1, 16)]),
    (softmax_loss, [(5, 7), (5, 7)]),
    (norm_loss, [(6, 32), (32,), (32,)]),
    (mlp, [(4, 8), (8, 16), (16, 3)]),
    (indexing, [(3, 4), (2,)]),
]


@pytest.mark.parametrize("fn,shapes", CASES, ids=[c[0].__name__ for c in CASES])
def test_forward_backward_match_eager_twice(fn, shapes, backend):
    cf = tj.compile(fn, backend=backend)
    for seed in (0, 1):  # second call: different data, must not reuse baked values
        xs = _leaves(*shapes, seed=seed)
        want, gwant = _grads(fn, *xs)
        got, ggot = _grads(cf, *xs)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        for a, b in zip(ggot, gwant):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert cf.compiles == 1


def test_outputs_are_tensors_with_one_node(backend):
    cf = tj.compile(lambda x: (x.exp(), x.sum()), backend=backend)
    x = _leaves((3,))[0]
    a, s = cf(x)
    assert isinstance(a, tj.Tensor) and a.grad_fn is s.grad_fn
    (a.sum() + s).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()) + 1, rtol=1e-5)


def test_nested_structures_and_statics(backend):
    def f(d, scale: int, mode: str):
        y = d["a"] * scale + d["b"][0]
        return {"y": y if mode == "plain" else y.relu(), "n": scale}
    cf = tj.compile(f, backend=backend)
    d = {"a": tj.randn(4), "b": [tj.randn(4)]}
    out = cf(d, 3, "relu")
    np.testing.assert_allclose(out["y"].numpy(), f(d, 3, "relu")["y"].numpy(), rtol=1e-6)
    assert out["n"] == 3
    cf(d, 3, "relu")
    assert cf.compiles == 1
    cf(d, 4, "relu")  # static int is part of the key
    assert cf.compiles == 2


def test_float_args_do_not_recompile(backend):
    cf = tj.compile(lambda x, lr: x - lr * x, backend=backend)
    x = tj.ones(3)
    for lr in (0.1, 0.25, 0.5):
        np.testing.assert_allclose(cf(x, lr).numpy(), (1 - lr) * np.ones(3, np.float32),
                                   rtol=1e-6)
    assert cf.compiles == 1
    assert cf(x, 0.5).dtype is tj.float32  # a Python float promotes like a scalar


def test_guards_retrace_on_shape_dtype_requires_grad(backend):
    cf = tj.compile(lambda x: (x * 2).sum(), backend=backend)
    cf(tj.ones(3))
    cf(tj.ones(4))
    cf(tj.ones(4, dtype=tj.float64))
    cf(tj.ones(4, requires_grad=True))
    cf(tj.ones(4))
    assert cf.compiles == 4


def test_recompile_limit_warns_with_the_difference():
    cf = tj.compile(lambda x: x + 1, backend="interpret")
    for n in range(1, 9):
        cf(tj.ones(n))
    with pytest.warns(RuntimeWarning, match=r"tensor 'x' size mismatch at dim 0: expected 8, "
                                             r"got 9"):
        out = cf(tj.ones(9))
    np.testing.assert_array_equal(out.numpy(), 2 * np.ones(9))
    assert cf.compiles == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf(tj.ones(10))  # warned once only; runs eagerly


def test_recompile_messages_name_the_argument_that_changed_in_nested_and_keyword_args():
    from tracejit.jit.structure import key_difference

    def f(xs, y, z=None, *, scale=None):
        return xs[0] + xs[1][0] + y + scale
    cf = tj.compile(f, backend="interpret")
    base = ([tj.ones(2), [tj.ones(2), tj.ones(2)]], tj.ones(2))
    k0, _ = cf.key(base, {"scale": tj.ones(2)})
    for args, kw, want in [
            (([tj.ones(2), [tj.ones(2), tj.ones(2)]], tj.ones(3)), {"scale": tj.ones(2)},
             "tensor 'y' size mismatch at dim 0: expected 2, got 3"),
            (([tj.ones(2), [tj.ones(2), tj.ones(2, dtype=tj.float64)]], tj.ones(2)),
             {"scale": tj.ones(2)}, "tensor 'xs' dtype mismatch"),
            (base, {"scale": tj.ones(2, requires_grad=True)},
             "tensor 'scale' requires_grad mismatch"),
            (base + (3,), {"scale": tj.ones(2)}, "the positional arguments changed structure"),
            (([tj.ones(2), [tj.ones(2)]], tj.ones(2)), {"scale": tj.ones(2)},
             "'xs' changed structure: expected a list of 2, got a list of 1")]:
        k1, _ = cf.key(args, kw)
        assert key_difference([k0], k1, cf._argnames).startswith(want)


def branchy(x):
    if x.sum() > 0:
        return x * 2
    return x * 3


def test_graph_break_falls_back_with_location(backend):
    cf = tj.compile(branchy, backend=backend)
    with pytest.warns(RuntimeWarning, match=r"graph break.*test_jit.py:\d+"):
        a = cf(tj.ones(3))
    b = cf(-tj.ones(3))  # the other branch: correct, because it runs eagerly
    np.testing.assert_array_equal(a.numpy(), 2 * np.ones(3))
    np.testing.assert_array_equal(b.numpy(), -3 * np.ones(3))


@pytest.mark.parametrize("what", ["item", "numpy", "tolist", "bool"])
def test_graph_break_fullgraph_raises(what, backend):
    def f(x):
        v = {"item": lambda: x.sum().item(), "numpy": lambda: x.numpy(),
             "tolist": lambda: x.tolist(), "bool": lambda: bool(x.sum() > 0)}[what]()
        return x * (2.0 if v is not None else 1.0)
    cf = tj.compile(f, backend=backend, fullgraph=True)
    with pytest.raises(RuntimeError, match=r"graph break.*test_jit.py:\d+"):
        cf(tj.ones(3))


def test_random_inside_compiled_function_is_a_graph_break():
    cf = tj.compile(lambda x: x + tj.rand(3), backend="interpret", fullgraph=True)
    with pytest.raises(RuntimeError, match="random number generation"):
        cf(tj.ones(3))


def test_closed_over_parameters_are_read_by_reference(backend):
    w = tj.ones(3, requires_grad=True)
    cf = tj.compile(lambda x: (x * w).sum(), backend=backend)
    x = tj.tensor([1.0, 2.0, 3.0])
    assert cf(x).item() == 6.0
    with tj.no_grad():
        w.mul_(2.0)  # an optimizer step between calls
    loss = cf(x)
    assert loss.item() == 12.0 and cf.compiles == 1
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0, 3.0])


def test_mutation_of_inputs_and_buffers_is_written_back(backend):
    running = tj.zeros(3)

    def f(x):
        with tj.no_grad():
            running.mul_(0.9).add_(x.mean(0) * 0.1)
        x.add_(1.0)
        return x * 2

    cf = tj.compile(f, backend=backend)
    x = tj.ones(2, 3)
    out = cf(x)
    np.testing.assert_allclose(running.numpy(), 0.1 * np.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(x.numpy(), 2 * np.ones((2, 3)))
    np.testing.assert_array_equal(out.numpy(), 4 * np.ones((2, 3)))
    cf(x)
    np.testing.assert_allclose(running.numpy(), 0.9 * 0.1 + 0.1 * 2.0 * np.ones(3), rtol=1e-5)


def test_nested_compiled_functions_inline(backend):
    inner = tj.compile(lambda x: x.exp(), backend=backend)
    outer = tj.compile(lambda x: inner(x).sum(), backend=backend)
    x = _leaves((4,))[0]
    outer(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-5)
    assert inner.compiles == 0 and outer.compiles == 1


def test_double_backward_raises_clearly(backend):
    cf = tj.compile(lambda x: (x ** 3).sum(), backend=backend)
    x = _leaves((3,))[0]
    (g,) = tj.autograd.grad(cf(x), x, create_graph=False)
    np.testing.assert_allclose(g.numpy(), 3 * x.detach().numpy() ** 2, rtol=1e-5)
    with pytest.raises(RuntimeError, match="double backward"):
        tj.autograd.grad(cf(x), x, create_graph=True)


def test_no_grad_and_detach_inside_are_respected(backend):
    def f(x):
        with tj.no_grad():
            s = x.sum()
        return (x * s).sum() + (x.detach() * x).sum()
    cf = tj.compile(f, backend=backend)
    x = _leaves((4,))[0]
    cf(x).backward()
    want = x.detach().numpy().sum() + x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5)


def test_saved_input_modified_before_backward_raises(backend):
    cf = tj.compile(lambda x, w: (x * w).sum(), backend=backend)
    x, w = _leaves((3,), (3,))
    x2 = x.detach().clone()
    loss = cf(x2, w)
    x2.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_input_saved_for_backward_then_modified_by_the_function_raises(backend):
    # eager raises here (mul saved x, add_ changed it); the compiled backward must not
    # silently use the updated x
    def f(x, w):
        loss = (x * w).sum()
        x.add_(1.0)
        return loss
    cf = tj.compile(f, backend=backend)
    for fn in (f, cf):
        x, w = tj.tensor([1.0, 2.0, 3.0]), tj.ones(3, requires_grad=True)
        loss = fn(x, w)
        np.testing.assert_array_equal(x.numpy(), [2.0, 3.0, 4.0])
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


@pytest.mark.parametrize("case", ["slice", "view", "transpose", "detach", "int_index",
                                  "stale_view", "stale_output"])
def test_views_modified_in_place_run_eagerly_with_eager_results(backend, case):
    """Traced values do not share memory as eager views do: an in-place update of a view, or a
    view used after its base changed, breaks the graph (with a warning) instead of dropping or
    missing the write."""
    def f(x):
        with tj.no_grad():
            if case == "slice":
                x[1:].add_(x[:-1] * 2)
            elif case == "view":
                x.view(2, 3).mul_(2.0)
            elif case == "transpose":
                x.view(2, 3).t()[0].fill_(7.0)
            elif case == "detach":
                x.detach().sub_(1.0)
            elif case == "int_index":
                x[4].fill_(-1.0)
            elif case == "stale_view":
                v = x[:3]
                x.mul_(10.0)
                return v * 1.0
            elif case == "stale_output":
                v = x[2:]
                x.add_(1.0)
                return v
        return x * 1.0
    a = np.arange(6, dtype=np.float32)
    x_eager, x_comp = tj.tensor(a), tj.tensor(a)
    cf = tj.compile(f, backend=backend)
    with pytest.warns(RuntimeWarning, match="graph break"):
        got = cf(x_comp)
    want = f(x_eager)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(x_comp.numpy(), x_eager.numpy())


def test_views_without_in_place_updates_still_compile(backend):
    def f(x):
        with tj.no_grad():
            x.mul_(2.0)
            v = x[1:].view(1, 5)      # made after the update: sees it
        return v + x[:-1].view(1, 5)
    x = tj.tensor(np.arange(6, dtype=np.float32))
    cf = tj.compile(f, backend=backend)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cf(x)
    np.testing.assert_array_equal(got.numpy(), [[2.0, 6.0, 10.0, 14.0, 18.0]])
    assert cf.compiles == 1


def test_closed_over_gradient_is_read_afresh_on_every_call(backend):
    w = tj.ones(3, requires_grad=True)
    cf = tj.compile(lambda: w.grad * 2.0, backend=backend)
    for k in (1.0, 2.0, 3.0):
        (w * k).sum().backward()
        np.testing.assert_array_equal(cf().numpy(), np.full(3, 2 * k, np.float32))
        w.grad = None
    assert cf.compiles == 1
    w.grad = None
    # the trace assumed a gradient: without one the function retraces (and fails as eager)
    with pytest.raises(TypeError):
        cf()


def test_grad_assignments_inside_are_replayed_and_argument_grads_break(backend):
    w = tj.ones(2, requires_grad=True)

    def clear(x):
        w.grad = None
        return x + 1
    cf = tj.compile(clear, backend=backend)
    for _ in range(2):
        (w * 3.0).sum().backward()
        cf(tj.ones(2))
        assert w.grad is None           # the assignment happens on every call
    with pytest.warns(RuntimeWarning, match="graph break"):
        tj.compile(lambda x: x.grad, backend=backend)(w)
    with pytest.raises(TypeError, match="Tensor or None"):
        tj.compile(lambda x: setattr(w, "grad", 1.0), backend=backend)(tj.ones(1))


def test_tensor_made_inside_and_updated_in_place(backend):
    def f(x):
        z = tj.zeros(3)
        z.add_(x)
        return z * 2
    cf = tj.compile(f, backend=backend)
    for k in (1.0, 2.0):
        np.testing.assert_array_equal(cf(tj.full((3,), k)).numpy(), np.full(3, 2 * k))


def test_disable_and_eager_backend():
    calls = []

    def f(x):
        calls.append(1)
        return x + 1
    cf = tj.compile(f, backend="interpret")
    cf(tj.ones(2))
    cf(tj.ones(2))
    assert len(calls) == 1  # traced once, then compiled code
    tj.disable()
    try:
        cf(tj.ones(2))
        assert len(calls) == 2
    finally:
        tj.disable(False)
    tj.compile(f, backend="eager")(tj.ones(2))
    assert len(calls) == 3


def test_explain_reports_graphs_guards_saved_and_times(capsys):
    x, w = _leaves((8,), (8,))
    e = tj.explain(lambda x, w: (x * w).tanh().sum(), backend="interpret")(x, w)
    text = str(e)
    for part in ("forward graph", "backward graph", "saved for backward", "guards:",
                 "compile time", "tanh", "graph breaks: 0"):
        assert part in text
    assert "forward graph" in capsys.readouterr().out
    e2 = tj.explain(branchy, backend="interpret")(tj.ones(2))
    assert e2.graph_breaks and "test_jit.py" in e2.graph_breaks[0][1]


def test_ir_nodes_carry_user_locations(backend):
    x = _leaves((4,))[0]
    e = tj.explain(gelu_chain, backend=backend)(x, x, x)
    assert "test_jit.py:" in str(e.forward_graph)


def test_partition_saves_inputs_not_elementwise_intermediates():
    x, w, b = _leaves((1024,), (1024,), (1024,))
    e = tj.explain(gelu_chain, backend="interpret")(x, w, b)
    assert e.saved_bytes == 0  # W1: only the inputs are needed, the chain is recomputed


def test_partition_recomputes_slices_of_inputs():
    """An unrolled RNN reads xs[t] per step: the backward re-slices the saved input instead of
    the forward returning (and copying) one slice per step."""
    xs, w = tj.randn(6, 4, 3), tj.randn(3, 5, requires_grad=True)

    def f(xs, w):
        return sum((xs[t] @ w).tanh().sum() for t in range(xs.shape[0]))
    e = tj.explain(f, backend="interpret")(xs, w)
    assert "index" not in [n.op for n in e.forward_graph.outputs]
    assert e.saved_bytes == 6 * 4 * 5 * 4          # the six matmul results only, not xs[t]
    cf = tj.compile(f)
    w2 = w.detach().clone().requires_grad_()
    cf(xs, w).backward()
    f(xs, w2).backward()
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("read", [lambda x: x[0:2].exp(), lambda x: x.exp()[0:2]],
                         ids=["slice_then_exp", "exp_then_slice"])
def test_values_read_before_an_in_place_update_of_an_input_are_saved(read):
    """The function reads x, then updates x in place: the backward must see the values read,
    not recompute them from the updated array (a slice is cheap to recompute, but not from
    the wrong data)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3)).astype(np.float32)
    W = rng.standard_normal((2, 3)).astype(np.float32)

    def f(x, w):
        y = read(x) * w
        x.mul_(2)
        return y.sum()
    grads = []
    for fn in (f, tj.compile(f)):
        x, w = tj.tensor(X.copy()), tj.tensor(W.copy(), requires_grad=True)
        fn(x, w).backward()
        np.testing.assert_allclose(x.numpy(), 2 * X)
        grads.append(w.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_gather_is_not_moved_in_front_of_ops_that_see_the_sign_of_zero():
    """A row gather moves onto the tensor in memory through elementwise ops, but the one-hot
    pick returns -0.0 as +0.0, so not through 1/x (1/-0.0 is -inf)."""
    x = tj.tensor(np.array([[1.0, -0.0, 2.0], [-0.0, 3.0, 4.0]], np.float32))
    t = tj.tensor(np.array([1, 0]))

    def f(x, t):
        return (1.0 / x).gather(1, t.unsqueeze(1)), (x * 2).gather(1, t.unsqueeze(1))
    for got, want in zip(tj.compile(f)(x, t), f(x, t)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_debug_nans_names_the_op(monkeypatch):
    monkeypatch.setenv("TRACEJIT_DEBUG_NANS", "1")
    cf = tj.compile(lambda x: (x - 1.0).log() * 2, backend="interpret")
    with pytest.warns(RuntimeWarning, match=r"log .*test_jit.py:\d+"):
        cf(tj.tensor([0.5, 2.0]))


def test_debug_dir_dumps_ir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DEBUG_DIR", str(tmp_path))
    tj.compile(lambda x: (x * 1.0 + 0.0).sum(), backend="interpret")(tj.ones(3))
    assert any(p.name.endswith(".before.ir") for p in tmp_path.iterdir())


def test_log_env_var_enables_loggers():
    code = ("import tracejit as tj; f = tj.compile(lambda x: x * 2, backend='interpret'); "
            "f(tj.ones(2)); f(tj.ones(3))")
    env = dict(os.environ, TRACEJIT_LOG="graph,recompiles")
    r = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True,
                       text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "forward graph" in r.stderr and "recompiling" in r.stderr


def test_methods_and_descriptors(backend):
    class Scaler:
        def __init__(self):
            self.w = tj.full((3,), 2.0)

        @tj.compile
        def __call__(self, x):
            return x * self.w

    s = Scaler()
    np.testing.assert_array_equal(s(tj.ones(3)).numpy(), 2 * np.ones(3))


def test_an_input_returned_is_the_same_object(backend):
    w = tj.ones(2)

    def f(x):
        with tj.no_grad():
            x.add_(1.0)
        return x, w
    x = tj.zeros(2)
    cf = tj.compile(f, backend=backend)
    for _ in range(2):
        a, b = cf(x)
        assert a is x and b is w          # as eager returns them
    np.testing.assert_array_equal(x.numpy(), [2.0, 2.0])


def test_results_that_view_an_input_share_its_memory_as_in_eager():
    """x[0], x.view(-1), x.t(), expand and detach of an input are views in eager: the compiled
    call returns views of the input too (a write through one is seen by the other), with
    eager's gradients; results computed from it are fresh tensors."""
    def f(x):
        return x[0], x.view(-1), x.t(), x.unsqueeze(0).expand(2, 2, 2), x.detach(), (x * 2)[0]
    cf = tj.compile(f)
    x = tj.tensor([[1.0, 2.0], [3.0, 4.0]])
    cf(x)
    out = cf(x)
    x.add_(100.0)
    assert [float(t.reshape(-1)[0]) for t in out] == [101.0] * 5 + [2.0]
    out[0].fill_(-1.0)
    assert x.tolist() == [[-1.0, -1.0], [103.0, 104.0]]

    def g(x, y):
        return x.t(), x * y, x[1]
    cg, w = tj.compile(g), tj.tensor([[1.0, 2.0], [3.0, 4.0]])
    grads = []
    for fn in (g, cg, cg):
        xg = tj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        a, b, c = fn(xg, tj.full((2, 2), 3.0))
        ((a * w).sum() + b.sum() + c.sum() * 5.0).backward()
        grads.append(xg.grad.tolist())
    assert grads[1] == grads[2] == grads[0]


def test_a_returned_contiguous_of_an_input_is_the_input_when_eager_returns_it():
    """x.contiguous() is x itself for a contiguous x and a copy otherwise: a compiled function
    returning it hands back the same, so writes through the result reach x exactly as in eager,
    and gradients flow to x."""
    def f(x):
        return x.contiguous(), x.contiguous().view(-1)
    cf = tj.compile(f)
    for _ in range(2):
        x = tj.ones(2, 2)
        a, b = cf(x)
        assert a is x
        b.add_(1.0)
        assert x.tolist() == [[2.0, 2.0], [2.0, 2.0]]
        xt = tj.ones(2, 3).t()
        a, b = cf(xt)
        assert a is not xt and a.is_contiguous()
        a.add_(1.0)
        assert xt.tolist() == [[1.0, 1.0]] * 3
    xg = tj.ones(2, 2, requires_grad=True)
    a, b = cf(xg)
    (a.sum() * 2.0 + b.sum()).backward()
    assert xg.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_several_in_place_updates_of_an_intermediate_compile():
    """An intermediate updated in place twice with grad is no leaf (eager allows it): the
    function compiles (no fallback warning) and its gradients are eager's."""
    def h(a):
        t = a * 2.0
        t.mul_(a)
        t.add_(t)
        return t.sum()
    ch = tj.compile(h)
    grads = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (h, ch, ch):
            a = tj.tensor([1.0, -2.0, 3.0], requires_grad=True)
            fn(a).backward()
            grads.append(a.grad.tolist())
    assert grads[0] == grads[1] == grads[2] == [8.0, -16.0, 24.0]


def test_an_input_written_in_place_keeps_its_old_value_for_the_backward():
    """a.mul_(b) saves a's value from before the update (eager's in-place ops do): the
    compiled call copies it before running, so the backward neither raises nor reads the
    new value; reading a after its update in a saved op still raises, as in eager."""
    def g(a, b):
        a.mul_(b)
        a.add_(b)
        return (a * a).sum()
    cg = tj.compile(g)
    res = []
    for fn in (g, cg, cg):
        a, b = tj.full((3,), 2.0), tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
        r = fn(a, b)
        r.backward()
        res.append((b.grad.tolist(), a.tolist(), r.item()))
    assert res[0] == res[1] == res[2] == ([18.0, 36.0, 54.0], [3.0, 6.0, 9.0], 126.0)

    def late(a, b):
        y = (a * b).sum()
        a.mul_(2.0)
        return y + (a * b).sum()
    cl = tj.compile(late)
    for fn in (late, cl, cl):
        a, b = tj.full((3,), 2.0), tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            fn(a, b).backward()
