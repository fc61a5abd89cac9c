"""tracejit.compile guards on the Python values a trace reads (jit/reads.py): globals, closure
variables, module and object attributes, a helper's globals. A changed value retraces, so the
compiled result equals eager's; an unchanged one does not retrace (counted by `compiles`)."""
import logging
import sys
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.jit.backends import default_backend

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])

_K = 2.0
_USE_RELU = True
_W = tj.tensor([1.0, 2.0])
_HELPER_SCALE = 3.0
_N = 0
_THIS = sys.modules[__name__]


def _times_k(x):
    return x * _K


def _maybe_relu(x):
    return tj.relu(x) if _USE_RELU else x


def _times_w(x):
    return x * _W


def _helper(x):
    return x * _HELPER_SCALE


def _calls_helper(x):
    return _helper(x) + 1.0


def _same(cf, fn, x):
    np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_global_float_change_retraces_and_equal_value_does_not(backend, monkeypatch):
    cf = tj.compile(_times_k, backend=backend)
    x = tj.ones(2)
    _same(cf, _times_k, x)
    _same(cf, _times_k, x)
    monkeypatch.setattr(_THIS, "_K", float("2.0"))     # another object, the same value
    _same(cf, _times_k, x)
    assert cf.compiles == 1
    monkeypatch.setattr(_THIS, "_K", 7.0)
    np.testing.assert_array_equal(cf(x).numpy(), [7.0, 7.0])
    assert cf.compiles == 2
    monkeypatch.setattr(_THIS, "_K", 7)                  # the same value, another type
    _same(cf, _times_k, x)
    assert cf.compiles == 3
    monkeypatch.setattr(_THIS, "_K", 2.0)                # back: the first trace is reused
    _same(cf, _times_k, x)
    assert cf.compiles == 3


def test_global_bool_steering_a_branch(monkeypatch):
    cf = tj.compile(_maybe_relu, backend="interpret")
    x = -tj.ones(2)
    np.testing.assert_array_equal(cf(x).numpy(), [0.0, 0.0])
    cf(x)
    monkeypatch.setattr(_THIS, "_USE_RELU", False)
    np.testing.assert_array_equal(cf(x).numpy(), [-1.0, -1.0])
    assert cf.compiles == 2


def test_global_tensor_rebound_retraces_updated_in_place_does_not(monkeypatch):
    cf = tj.compile(_times_w, backend="interpret")
    x = tj.ones(2)
    _same(cf, _times_w, x)
    with tj.no_grad():
        _W.mul_(1.0)                       # in place: read by reference, no retrace
    _same(cf, _times_w, x)
    assert cf.compiles == 1
    monkeypatch.setattr(_THIS, "_W", tj.tensor([5.0, 5.0]))
    np.testing.assert_array_equal(cf(x).numpy(), [5.0, 5.0])
    assert cf.compiles == 2


def test_closure_cells_float_and_tensor():
    k = 2.0
    w = tj.tensor([1.0, 2.0])

    def f(x):
        return x * k + w

    cf = tj.compile(f, backend="interpret")
    x = tj.ones(2)
    _same(cf, f, x)
    _same(cf, f, x)
    assert cf.compiles == 1
    k = 5.0
    _same(cf, f, x)
    np.testing.assert_array_equal(cf(x).numpy(), [6.0, 7.0])
    w = tj.tensor([0.0, 0.0])
    np.testing.assert_array_equal(cf(x).numpy(), [5.0, 5.0])
    assert cf.compiles == 3


def test_nonlocal_rebound_by_an_outer_function():
    def make():
        scale = 1.0

        def f(x):
            return x * scale

        def set_scale(v):
            nonlocal scale
            scale = v
        return f, set_scale

    f, set_scale = make()
    cf = tj.compile(f, backend="interpret")
    x = tj.ones(2)
    _same(cf, f, x)
    set_scale(4.0)
    np.testing.assert_array_equal(cf(x).numpy(), [4.0, 4.0])


class _Scaled(tj.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = tj.nn.Linear(2, 2)
        self.scale = 1.0

    def forward(self, x):
        return self.lin(x) * self.scale


def test_module_float_attribute(backend):
    m = _Scaled()
    cm = tj.compile(m, backend=backend)
    x = tj.ones(1, 2)
    for _ in range(3):
        np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)
    assert cm._compiled.compiles == 1
    m.scale = 3.0
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)
    assert cm._compiled.compiles == 2
    # the hyperparameters of tracejit's own layers are guarded the same way
    m.lin = tj.nn.Sequential(tj.nn.Linear(2, 2), tj.nn.LeakyReLU(0.5))
    x = -tj.ones(1, 2)
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)
    m.lin[1].negative_slope = 0.01
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)


def test_forward_replaced_on_the_instance_retraces():
    m = _Scaled()
    cm = tj.compile(m, backend="interpret")
    x = tj.ones(1, 2)
    cm(x)
    m.forward = lambda x: x * 10.0
    np.testing.assert_array_equal(cm(x).numpy(), [[10.0, 10.0]])


def test_library_layers_compile_once_over_training_steps():
    m = tj.nn.Sequential(tj.nn.Linear(4, 3), tj.nn.BatchNorm1d(3), tj.nn.ReLU(),
                         tj.nn.Dropout(0.0), tj.nn.LayerNorm(3))
    cm = tj.compile(m, backend="interpret")
    for _ in range(4):
        cm(tj.ones(5, 4)).sum().backward()
    assert cm._compiled.compiles == 1


def test_helper_global_and_object_attribute(monkeypatch):
    cf = tj.compile(_calls_helper, backend="interpret")
    x = tj.ones(2)
    _same(cf, _calls_helper, x)
    monkeypatch.setattr(_THIS, "_HELPER_SCALE", 10.0)
    np.testing.assert_array_equal(cf(x).numpy(), [11.0, 11.0])

    class Cfg:
        def __init__(self):
            self.scale = 2.0
    cfg = Cfg()

    def g(x):
        return x * cfg.scale
    cg = tj.compile(g, backend="interpret")
    _same(cg, g, x)
    cfg.scale = 4.0
    _same(cg, g, x)
    assert cg.compiles == 2


def test_attribute_of_self_in_a_compiled_method():
    class Scaler:
        def __init__(self):
            self.w = tj.full((2,), 2.0)

        @tj.compile(backend="interpret")
        def __call__(self, x):
            return x * self.w

    s = Scaler()
    np.testing.assert_array_equal(s(tj.ones(2)).numpy(), [2.0, 2.0])
    s.w = tj.full((2,), 3.0)
    np.testing.assert_array_equal(s(tj.ones(2)).numpy(), [3.0, 3.0])


def test_nested_compiled_function_reads_are_guarded(monkeypatch):
    inner = tj.compile(_times_k, backend="interpret")

    def outer(x):
        return inner(x) + 1.0
    cf = tj.compile(outer, backend="interpret")
    x = tj.ones(2)
    cf(x)
    monkeypatch.setattr(_THIS, "_K", 5.0)
    np.testing.assert_array_equal(cf(x).numpy(), [6.0, 6.0])


def _count(x):
    global _N
    _N += 1
    return x * _N


def test_a_global_rebound_by_the_function_itself_stays_eager_correct(monkeypatch):
    monkeypatch.setattr(_THIS, "_N", 0)
    cf = tj.compile(_count, backend="interpret")
    x = tj.ones(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(1, 12):              # retraces while it compiles, then runs eagerly
            assert cf(x).item() == i
    assert _N == 11


def test_guard_failure_is_logged_and_explained(monkeypatch, caplog):
    cf = tj.compile(_times_k, backend="interpret")
    x = tj.ones(2)
    cf(x)
    monkeypatch.setattr(_THIS, "_K", 7.0)
    with caplog.at_level(logging.DEBUG, logger="tracejit.recompiles"):
        cf(x)
    assert "global '_K' of _times_k changed: expected 2.0, got 7.0" in caplog.text
    text = str(tj.explain(_times_k, backend="interpret")(x))
    assert "global '_K' of _times_k == 7.0" in text


def test_recompile_limit_names_the_changed_value(monkeypatch):
    cf = tj.compile(_times_k, backend="interpret")
    x = tj.ones(1)
    for i in range(8):
        monkeypatch.setattr(_THIS, "_K", float(i))
        cf(x)
    monkeypatch.setattr(_THIS, "_K", 8.0)
    with pytest.warns(RuntimeWarning, match="global '_K' of _times_k changed: expected 7.0, "
                                            "got 8.0"):
        assert cf(x).item() == 8.0
