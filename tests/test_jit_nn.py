"""Compiled nn.Modules: the same parameter objects, training identical to eager, buffers
(BatchNorm running stats) written back."""
import warnings

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional as F
from tracejit.jit.backends import default_backend

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])


def _model(seed=0):
    tj.manual_seed(seed)
    return tj.nn.Sequential(tj.nn.Linear(8, 16), tj.nn.BatchNorm1d(16), tj.nn.GELU("tanh"),
                            tj.nn.Linear(16, 16), tj.nn.LayerNorm(16), tj.nn.ReLU(),
                            tj.nn.Linear(16, 4))


def _train(model, fwd, steps=4):
    opt = tj.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = tj.tensor(rng.standard_normal((32, 8)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 4, 32))
        opt.zero_grad()
        loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_module_trains_like_eager(backend):
    eager = _model()
    comp = _model()
    comp.load_state_dict(eager.state_dict())
    cm = tj.compile(comp, backend=backend)
    assert list(cm.parameters())[0] is list(comp.parameters())[0]
    le = _train(eager, eager)
    lc = _train(comp, cm)
    np.testing.assert_allclose(lc, le, rtol=1e-4, atol=1e-5)
    for (n, a), (_, b) in zip(eager.state_dict().items(), comp.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    assert cm._compiled.compiles == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_loss_function_over_module(backend):
    model = _model(1)
    ref = _model(1)

    @tj.compile(backend=backend)
    def loss_fn(x, y):
        return F.cross_entropy(model(x), y, label_smoothing=0.1)

    le = _train(ref, lambda x: ref(x), steps=3)
    rng = np.random.default_rng(0)
    opt = tj.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lc = []
    for _ in range(3):
        x = tj.tensor(rng.standard_normal((32, 8)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 4, 32))
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        lc.append(loss.item())
    assert len(lc) == len(le)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_mode_retraces_and_uses_running_stats(backend):
    m = _model(2)
    cm = tj.compile(m, backend=backend)
    x = tj.randn(16, 8)
    with tj.no_grad():
        cm(x)
        m.eval()
        got = cm(x)
        want = m(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_function_closing_over_module_guards_training_flag(backend):
    m = _model(3)
    f = tj.compile(lambda x: m(x).sum(), backend=backend)
    x = tj.randn(16, 8)
    with tj.no_grad():
        f(x)
        m.eval()
        got = f(x).item()
        want = m(x).sum().item()
        m.train()
        f(x)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert f.compiles == 2  # train and eval, each compiled once


def _opt_run(make_opt, compiled, backend, steps=5, between=None):
    """Eager backward, then opt.step() (compiled or not); returns the parameters' values."""
    tj.manual_seed(3)
    model = tj.nn.Sequential(tj.nn.Linear(6, 8), tj.nn.Tanh(), tj.nn.Linear(8, 3))
    opt = make_opt(model.parameters())
    step = tj.compile(opt.step, backend=backend) if compiled else opt.step
    rng = np.random.default_rng(0)
    for i in range(steps):
        x = tj.tensor(rng.standard_normal((16, 6)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 3, 16))
        F.cross_entropy(model(x), y).backward()
        if between is not None:
            between(i, model, opt)
        step()
        opt.zero_grad()
    return [p.detach().numpy().copy() for p in model.parameters()], step


OPTIMIZERS = {
    "sgd": lambda ps: tj.optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: tj.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "nesterov": lambda ps: tj.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda ps: tj.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adam": lambda ps: tj.optim.Adam(ps, lr=0.01),
    "adamw": lambda ps: tj.optim.AdamW(ps, lr=0.01, amsgrad=True),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_optimizer_step_reads_each_steps_gradient(backend, name):
    """A compiled step must read the gradient of this step (p.grad is a new tensor after each
    backward) and the state its first, eager, step creates; never the traced-time ones."""
    import warnings
    want, _ = _opt_run(OPTIMIZERS[name], False, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no graph break
        got, step = _opt_run(OPTIMIZERS[name], True, backend)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert step.compiles == 1                 # the first step ran eagerly, the rest compiled


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_optimizer_step_follows_lr_changes_and_loaded_state(backend):
    saved = {}

    def between(i, model, opt):
        for g in opt.param_groups:
            g["lr"] = 0.1 / (i + 1)           # what an LR scheduler does
        if i == 2:
            saved["sd"] = opt.state_dict()
        if i == 3:
            opt.load_state_dict(saved["sd"])  # new state tensors
    make = OPTIMIZERS["momentum"]
    want, _ = _opt_run(make, False, backend, between=between)
    got, step = _opt_run(make, True, backend, between=between)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the learning rate is an input (no recompile); the loaded state is new tensors (one)
    assert step.compiles == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_step_with_a_gradient_that_comes_and_goes(backend):
    def between(i, model, opt):
        if i % 2:
            model[0].bias.grad = None          # a parameter without a gradient this step
    make = OPTIMIZERS["momentum"]
    want, _ = _opt_run(make, False, backend, between=between)
    got, _ = _opt_run(make, True, backend, between=between)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _train_steps(compiled, backend, n=4, zero_first=False, opt_name="momentum"):
    tj.manual_seed(5)
    model = tj.nn.Sequential(tj.nn.Linear(6, 16), tj.nn.ReLU(), tj.nn.Linear(16, 3))
    opt = OPTIMIZERS[opt_name](model.parameters())

    def step(x, y):
        if zero_first:
            opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if not zero_first:
            opt.zero_grad()
        return loss
    fn = tj.compile(step, backend=backend) if compiled else step
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(n):
        x = tj.tensor(rng.standard_normal((32, 6)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 3, 32))
        losses.append(fn(x, y).item())
    return losses, model, fn


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zero_first", [False, True])
@pytest.mark.parametrize("opt_name", ["sgd", "momentum", "rmsprop", "adamw"])
def test_whole_training_step_compiles_and_trains_like_eager(backend, zero_first, opt_name):
    """forward, loss.backward(), opt.step() and zero_grad() in one compiled function: one
    graph (the backward generated inside the trace), parameters and optimizer state updated in
    place, .grad as eager leaves it."""
    import warnings
    want, m_e, _ = _train_steps(False, backend, zero_first=zero_first, opt_name=opt_name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no graph break
        got, m_c, fn = _train_steps(True, backend, zero_first=zero_first, opt_name=opt_name)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(m_c.parameters(), m_e.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-6)
        if zero_first:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-6)
        else:
            assert a.grad is None and b.grad is None
    assert fn.compiles == 1     # (with state to create, the first step ran eagerly)


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_over_tensors_passed_as_arguments_runs_eagerly(backend):
    """The trace sees an argument through a stand-in; an optimizer holding the tensors
    themselves would read no .grad and update nothing. Such a step breaks the graph and trains
    as eager does."""
    rng = np.random.default_rng(0)
    x = tj.tensor(rng.standard_normal((8, 4)).astype(np.float32))
    t = tj.tensor(rng.integers(0, 3, 8))
    runs = []
    for compiled in (False, True):
        w = tj.tensor(np.full((3, 4), 0.1, np.float32), requires_grad=True)
        opt = tj.optim.SGD([w], lr=0.5, momentum=0.9)

        def step(w, x, t):
            loss = tj.nn.functional.cross_entropy(x @ w.t(), t)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        f = tj.compile(step, backend=backend) if compiled else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs.append([f(w, x, t).item() for _ in range(4)])
        if compiled:
            assert any("passed as an argument" in str(c.message) for c in caught)
    assert runs[1] == runs[0] and runs[0][-1] < runs[0][0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_inside_accumulates_into_existing_grads(backend):
    w = tj.ones(3, requires_grad=True)
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def f(x):
        (x * w * 2.0).sum().backward()
        return x.grad * 1.0, w.grad * 1.0

    cf = tj.compile(f, backend=backend)
    gx, gw = cf(x)
    np.testing.assert_array_equal(gx.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    # existing gradients accumulate, as in eager (w: traced path; x: an argument, run eagerly)
    cf(x)
    np.testing.assert_array_equal(w.grad.numpy(), [4.0, 8.0, 12.0])
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tj.compile(lambda a: a.sum().backward(), backend=backend)(tj.ones(2))
    with pytest.raises(RuntimeError, match="second time"):
        def twice(a):
            s = (a * w).sum()
            s.backward()
            s.backward()
        tj.compile(twice, backend=backend)(tj.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_scheduler_step_inside_a_compiled_step_runs_eagerly(backend):
    p = tj.ones(2, requires_grad=True)
    opt = tj.optim.SGD([p], lr=1.0)
    sched = tj.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def step():
        (p * p).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    cf = tj.compile(step, backend=backend)
    with pytest.warns(RuntimeWarning, match="scheduler"):
        cf()
    cf()
    assert sched.last_epoch == 2 and opt.param_groups[0]["lr"] == 0.25


def _both(f, make, *, warns=False):
    """f run eagerly and compiled on fresh state from make(); returns both results."""
    import warnings
    out = []
    for compiled in (False, True):
        state = make()
        fn = tj.compile(lambda *a: f(state, *a)) if compiled else (lambda *a: f(state, *a))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if warns else "error")
            for _ in range(2):
                fn()
            out.append(state)
    return out


@pytest.mark.parametrize("case", ["updated_then_backward", "two_steps", "nonleaf_closure",
                                  "other_output"])
def test_backward_inside_matches_eager_in_corner_cases(case):
    def make():
        w = tj.ones(3, requires_grad=True)
        return {"w": w, "x": tj.tensor([1.0, 2.0, 3.0]), "h": w * 3.0}

    def f(s):
        w, x = s["w"], s["x"]
        if case == "updated_then_backward":      # the gradient of the updated leaf
            with tj.no_grad():
                w.mul_(2)
            (w * w * x).sum().backward()
        elif case == "two_steps":                # two optimizer steps in one function
            opt = s.setdefault("opt", tj.optim.SGD([w], lr=0.1))
            for _ in range(2):
                (w * w * x).sum().backward()
                opt.step()
                opt.zero_grad()
        elif case == "nonleaf_closure":          # backward reaches a tensor with a history
            (s["h"] * x).sum().backward(retain_graph=True)
        elif case == "other_output":             # an output with a backward of its own
            (w * x).sum().backward()
            s["out"] = x * w
            return
        return None
    eager, comp = _both(f, make, warns=case in ("nonleaf_closure", "other_output"))
    np.testing.assert_allclose(comp["w"].detach().numpy(), eager["w"].detach().numpy())
    g_e, g_c = eager["w"].grad, comp["w"].grad
    assert (g_e is None) == (g_c is None)
    if g_e is not None:
        np.testing.assert_allclose(g_c.numpy(), g_e.numpy(), rtol=1e-6)


def test_learning_rate_read_by_the_function_and_replaced_groups_follow_eager():
    def make():
        p = tj.ones(3, requires_grad=True)
        return {"p": p, "opt": tj.optim.SGD([p], lr=1.0)}

    def step(s):
        p, opt = s["p"], s["opt"]
        lr = opt.param_groups[0]["lr"]           # read before the optimizer reads it
        loss = (p * p).sum() * lr
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()
    for compiled in (False, True):
        s = make()
        fn = tj.compile(lambda: step(s)) if compiled else (lambda: step(s))
        got = []
        for lr in (0.5, 0.1, 0.01):
            s["opt"].param_groups[0]["lr"] = lr
            got.append(fn().item())
        s["opt"].param_groups[0] = dict(s["opt"].param_groups[0], lr=0.0)   # a new dict
        fn()
        if not compiled:
            want, p_want = got, s["p"].detach().numpy().copy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(s["p"].detach().numpy(), p_want, rtol=1e-6)


def test_a_traced_value_that_escapes_says_so():
    p = tj.ones(3, requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.1)
    log = []

    @tj.compile
    def step():
        (p * p).sum().backward()
        opt.step()
        opt.zero_grad()
        log.append(opt.param_groups[0]["lr"])
    step()
    step()
    with pytest.raises(RuntimeError, match="escaped the trace"):
        float(log[-1])


def test_contiguous_view_written_in_place_runs_eagerly():
    def f(x):
        with tj.no_grad():
            x.contiguous().mul_(2.0)
        return x * 1.0
    x1, x2 = tj.ones(3), tj.ones(3)
    with pytest.warns(RuntimeWarning, match="graph break"):
        got = tj.compile(f)(x2)
    np.testing.assert_array_equal(got.numpy(), f(x1).numpy())
    np.testing.assert_array_equal(x2.numpy(), x1.numpy())


def test_tensor_passed_in_and_closed_over_gets_both_gradients():
    w = tj.ones(3, requires_grad=True)
    x = tj.tensor([1.0, 2.0, 3.0])

    def f(a):
        (a * w * x).sum().backward()
    cf = tj.compile(f)
    with pytest.warns(RuntimeWarning, match="passed as an argument"):   # runs eagerly
        cf(w)
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0, 6.0])   # eager: both uses


def test_leaf_updated_inside_then_used_gets_its_gradient_from_the_outer_backward():
    w = tj.ones(3, requires_grad=True)
    x = tj.tensor([1.0, 2.0, 3.0])
    opt = tj.optim.SGD([w], lr=0.1)

    def f(x):
        opt.step()             # needs w.grad from the previous call
        opt.zero_grad()
        return (w * x).sum()
    cf = tj.compile(f)
    (w * x).sum().backward()
    for _ in range(3):
        cf(x).backward()
        np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(w.detach().numpy(), 1.0 - 0.3 * np.array([1.0, 2.0, 3.0]),
                               rtol=1e-6)


def test_hooks_lr_assignment_and_clipping_inside_a_compiled_step():
    import warnings
    w = tj.ones(3, requires_grad=True)
    w.register_hook(lambda g: g.clamp(-1.0, 1.0))
    cf = tj.compile(lambda x: (w * x).sum().backward())
    with pytest.warns(RuntimeWarning, match="hooks"):
        cf(tj.tensor([5.0, -5.0, 0.5]))
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, -1.0, 0.5])   # the hook ran

    p = tj.ones(3, requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.01)

    def double_lr():
        g = opt.param_groups[0]
        g["lr"] = g["lr"] * 2
    with pytest.warns(RuntimeWarning, match="assigned inside"):
        tj.compile(double_lr)()
    tj.compile(double_lr)
    assert opt.param_groups[0]["lr"] == 0.02

    def clipped(x):
        (p * x).sum().backward()
        tj.nn.utils.clip_grad_norm_([p], 1.0)
        opt.step()
        opt.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tj.compile(clipped)(tj.tensor([3.0, 0.0, 4.0]))
    np.testing.assert_allclose(p.detach().numpy(), [1 - 0.02 * 0.6, 1.0, 1 - 0.02 * 0.8],
                               rtol=1e-6)


def test_param_groups_appended_or_reloaded_and_numpy_learning_rates():
    p, q = tj.ones(2, requires_grad=True), tj.ones(2, requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.5)

    @tj.compile
    def step():
        (p * p + q * q).sum().backward()
        opt.step()
        opt.zero_grad()
        q.grad = None
    step()
    opt.param_groups[0]["params"].append(q)       # eager would now step q too
    step()
    np.testing.assert_allclose(q.detach().numpy(), [0.0, 0.0])
    sd = opt.state_dict()
    opt.param_groups[0]["lr"] = np.float64(0.25)    # a numpy float: an input, no recompile
    n = step.compiles
    step()
    assert step.compiles == n
    np.testing.assert_allclose(q.detach().numpy(), [0.0, 0.0])
    opt.load_state_dict(sd)                       # lr 0.5 again, read from the same dicts
    assert opt.param_groups[0]["lr"] == 0.5


def test_gradient_accumulation_keeps_both_traces():
    w = tj.ones(3, requires_grad=True)
    cf = tj.compile(lambda x: (w * x).sum().backward())
    x = tj.tensor([1.0, 2.0, 3.0])
    for _ in range(4):                            # four micro-steps, then zero the gradient
        cf(x)
        held = w.grad
        for _ in range(3):
            cf(x)
        assert w.grad is held                     # accumulated in place, as eager does
        np.testing.assert_array_equal(w.grad.numpy(), 4 * x.numpy())
        w.grad = None
    assert cf.compiles == 2                       # .grad None, and .grad present


def test_inputs_sliced_from_one_tensor_still_compile():
    data = tj.tensor(np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32))
    w = tj.zeros(4, requires_grad=True)

    @tj.compile
    def step(x, y):
        ((x @ w - y) ** 2).mean().backward()
    for _ in range(3):
        step(data[:, :4], data[:, 4])
    step.last_stats = {}
    step(data[:, :4], data[:, 4])
    assert step.last_stats                        # the compiled graph ran, not eager
    assert step.compiles == 2                     # (.grad None, then present)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_value_saved_for_backward_then_modified_raises_as_eager(where):
    w = tj.ones(3, requires_grad=True)
    x = tj.tensor([1.0, 2.0, 3.0])

    def f(x):
        h = w * 2.0
        loss = (h * h * x).sum()          # mul saves h
        with tj.no_grad():
            h.add_(1.0)
        if where == "inside":
            loss.backward()
            return None
        return loss
    for fn in (f, tj.compile(f)):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out = fn(x)
            out.backward()


def test_replacing_a_modules_parameter_retraces():
    tj.manual_seed(0)
    m = tj.nn.Linear(3, 2)
    cm = tj.compile(m)
    x = tj.ones(1, 3)
    cm(x)
    m.weight = tj.nn.Parameter(tj.zeros(2, 3))
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy())
    m.register_forward_hook(lambda mod, a, out: out * 0.0)
    np.testing.assert_array_equal(cm(x).detach().numpy(), np.zeros((1, 2)))


def test_tensor_attribute_rebound_in_forward_runs_eagerly():
    class Ema(tj.nn.Module):
        def __init__(self):
            super().__init__()
            self.avg = tj.zeros(2)

        def forward(self, x):
            self.avg = self.avg * 0.5 + x * 0.5
            return self.avg * 1.0
    m = Ema()
    cm = tj.compile(m)
    with pytest.warns(RuntimeWarning, match="Ema.avg"):
        outs = [cm(tj.ones(2)).numpy()[0] for _ in range(3)]
    assert outs == [0.5, 0.75, 0.875]


def test_an_error_inside_a_compiled_step_leaves_the_state_eager_leaves():
    """The trace raised: the call runs eagerly, which raises the same error after the same
    side effects (here an optimizer step and BatchNorm statistics)."""
    def run(compiled):
        tj.manual_seed(0)
        m = tj.nn.Sequential(tj.nn.Linear(3, 4), tj.nn.BatchNorm1d(4), tj.nn.Linear(4, 1))
        opt = tj.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

        def step(x, boom):
            opt.zero_grad()
            m(x).pow(2).mean().backward()
            opt.step()
            if boom:
                raise ValueError("boom")
        f = tj.compile(step) if compiled else step
        x = tj.tensor(np.arange(12.0, dtype=np.float32).reshape(4, 3))
        f(x, False)
        f(x, False)
        with pytest.raises(ValueError, match="boom"):
            f(x, True)
        return [t.detach().numpy().copy() for t in list(m.parameters()) + list(m.buffers())]
    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_modules_appended_to_containers_after_a_trace_retrace():
    """Sequential.append, ModuleList.append and a new ModuleDict key after the first call: the
    compiled module runs the new structure (it replayed the old trace before)."""
    nn = tj.nn
    tj.manual_seed(0)
    x = tj.randn(4, 6)
    seq = nn.Sequential(nn.Linear(6, 6))

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(6, 6)])
            self.d = nn.ModuleDict({"a": nn.Linear(6, 6)})

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            for _, layer in self.d.items():
                x = layer(x)
            return x
    loop = Loop()
    for model, grow in ((seq, lambda: seq.append(nn.Linear(6, 2))),
                        (loop, lambda: loop.layers.append(nn.Linear(6, 6))),
                        (loop, lambda: loop.d.update({"b": nn.Linear(6, 1)}))):
        cm = tj.compile(model)
        cm(x)
        grow()
        got, want = cm(x), model(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)


def test_parameters_added_to_parameter_containers_after_a_trace_retrace():
    nn = tj.nn

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ps = nn.ParameterList([nn.Parameter(tj.ones(2))])
            self.pd = nn.ParameterDict({"a": nn.Parameter(tj.ones(2))})

        def forward(self, x):
            for p in self.ps:
                x = x + p
            for _, p in self.pd.items():
                x = x * p
            return x
    m = M()
    cm, x = tj.compile(m), tj.ones(2)
    assert cm(x).tolist() == [2.0, 2.0]
    m.ps.append(nn.Parameter(tj.full((2,), 5.0)))
    assert cm(x).tolist() == m(x).tolist() == [7.0, 7.0]
    m.pd["b"] = nn.Parameter(tj.full((2,), 3.0))
    assert cm(x).tolist() == m(x).tolist() == [21.0, 21.0]


def test_replaced_parameter_dict_entries_and_swapped_hooks_retrace():
    nn = tj.nn

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pd = nn.ParameterDict({"k": nn.Parameter(tj.ones(2))})
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x) * self.pd["k"]
    m = M()
    cm, x = tj.compile(m), tj.ones(1, 2)
    cm(x)
    m.pd["k"] = nn.Parameter(tj.full((2,), 3.0))
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy())
    h = m.lin.register_forward_hook(lambda mod, i, o: o * 2.0)
    cm(x)
    h.remove()
    m.lin.register_forward_hook(lambda mod, i, o: o + 100.0)      # same number of hooks
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy())


def test_a_parameter_read_from_a_module_that_is_not_called_is_guarded():
    nn = tj.nn

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(2, 2)

        def forward(self, x):
            return x @ self.proj.weight.t()
    m = M()
    cm, x = tj.compile(m), tj.ones(1, 2)
    cm(x)
    m.proj.weight = nn.Parameter(tj.full((2, 2), 5.0))
    assert cm(x).tolist() == m(x).tolist() == [[10.0, 10.0]]
