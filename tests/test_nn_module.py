"""nn.Module and the containers: registration by attribute, traversal, state_dict keys and
load_state_dict (tensors or numpy arrays, strict), modes, zero_grad, apply, hooks, dtype
conversion, deepcopy and the printed repr, as in PyTorch."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
from tracejit import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.scale = nn.Parameter(tj.ones(1))
        self.register_buffer("steps", tj.zeros((), dtype=tj.int64))
        self.register_buffer("cache", tj.zeros(2), persistent=False)
        self.not_registered = tj.zeros(3)     # a plain tensor attribute: not state

    def forward(self, x):
        return self.fc2(self.bn(self.fc1(x)).relu()) * self.scale


def test_parameter_is_a_leaf_tensor():
    p = nn.Parameter(tj.zeros(2))
    assert isinstance(p, tj.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(tj.zeros(2), requires_grad=False).requires_grad
    (p * 2).sum().backward()
    assert type(p.grad) is tj.Tensor and type(p * 2) is tj.Tensor
    assert repr(p).startswith("Parameter containing:\ntensor([0., 0.]")
    with pytest.raises(TypeError, match="Tensor"):
        nn.Parameter([1.0])


def test_registration_and_traversal():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "cache", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "bn", "fc2"]
    assert len(list(net.modules())) == 4
    assert net.get_submodule("bn") is net.bn and net.get_parameter("fc1.bias") is net.fc1.bias
    assert "fc1" in dir(net)


def test_state_dict_keys_values_and_sharing():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["scale", "steps", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                        "fc2.weight"]   # "cache" is not persistent
    assert isinstance(sd, OrderedDict) and not sd["fc1.weight"].requires_grad
    # values are detached but share memory, as PyTorch's
    with tj.no_grad():
        net.fc1.weight.fill_(3.0)
    assert (sd["fc1.weight"].numpy() == 3.0).all()
    assert net.state_dict(keep_vars=True)["fc1.weight"] is net.fc1.weight


def test_load_state_dict_from_tensors_and_numpy_arrays():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert (x.numpy() == y.numpy()).all(), k
    params = list(b.parameters())
    # a PyTorch state dict converted to numpy (float64 values are cast to the param dtype)
    arrays = {k: np.full(v.shape, 0.5, np.float64) for k, v in a.state_dict().items()}
    arrays["steps"] = np.array(7)
    b.load_state_dict(arrays)
    assert next(b.parameters()) is params[0]          # copied in place
    assert b.fc1.weight.dtype is tj.float32 and (b.fc1.weight.detach().numpy() == 0.5).all()
    assert b.steps.item() == 7


def test_load_state_dict_strict_errors():
    net = Net()
    sd = net.state_dict()
    del sd["fc1.bias"]
    sd["extra"] = tj.zeros(1)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert 'Missing key(s) in state_dict: "fc1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra"' in msg
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc1.bias"] and res.unexpected_keys == ["extra"]
    bad = net.state_dict()
    bad["fc1.weight"] = tj.zeros(2, 2)
    with pytest.raises(RuntimeError, match="size mismatch for fc1.weight: copying a param "
                       r"with shape tracejit.Size\(\[2, 2\]\) from checkpoint"):
        net.load_state_dict(bad)


def test_setattr_rules():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = tj.ones(1)
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    net.steps = tj.ones((), dtype=tj.int64)              # buffers accept tensors
    assert net.state_dict()["steps"].item() == 1
    net.fc2 = nn.Linear(3, 5)                            # replacing a child
    assert net.fc2.out_features == 5
    del net.fc2
    assert "fc2" not in dict(net.named_children())

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tj.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(AttributeError, match="has no attribute 'weight'"):
        _ = nn.ReLU().weight
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(tj.zeros(1))


def test_train_eval_zero_grad_requires_grad_apply():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(tj.randn(5, 4)).sum().backward()
    assert net.fc1.weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert (net.fc1.weight.grad.numpy() == 0).all()
    net.zero_grad()
    assert net.fc1.weight.grad is None
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Linear", "Net"]      # children first


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = lin(tj.ones(3, 2))
    assert calls == [(3, 2)]
    assert np.allclose(out.detach().numpy(), lin.bias.detach().numpy() + 1)
    h1.remove()
    h2.remove()
    assert np.allclose(lin(tj.zeros(1, 2)).detach().numpy(), lin.bias.detach().numpy())


def test_dtype_conversion_keeps_parameter_identity_and_deepcopy():
    net = Net()
    w = net.fc1.weight
    net.double()
    assert net.fc1.weight is w and w.dtype is tj.float64
    assert net.steps.dtype is tj.int64                    # integer buffers are not cast
    assert net(tj.randn(2, 4, dtype=tj.float64)).dtype is tj.float64
    clone = copy.deepcopy(net)
    assert isinstance(clone.fc1.weight, nn.Parameter)
    with tj.no_grad():
        clone.fc1.weight.fill_(0.0)
    assert not (net.fc1.weight.detach().numpy() == 0).all()


def test_repr_matches_pytorch():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (fc1): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (bn): BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)\n"
        "  (fc2): Linear(in_features=3, out_features=2, bias=False)\n"
        ")")
    seq = nn.Sequential(nn.Linear(1, 2), nn.Sequential(nn.ReLU(), nn.Dropout(0.1)))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Linear(in_features=1, out_features=2, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        ")")


def test_sequential():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    assert seq(tj.randn(4, 2)).shape == (4, 1)
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    del seq[1]
    assert [k for k, _ in seq.named_children()] == ["0", "1", "2"]
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"]
    with pytest.raises(IndexError):
        seq[10]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.Linear(2, 1))
    assert list(layers.state_dict())[-1] == "3.bias"
    assert isinstance(layers[1:], nn.ModuleList)
    x = tj.randn(1, 2)
    for layer in layers:
        x = layer(x)
    assert x.shape == (1, 1)
    d = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.ReLU()})
    d["c"] = nn.Linear(1, 2)
    assert list(d.keys()) == ["a", "b", "c"] and "c" in d and len(d) == 3
    assert list(d.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    with pytest.raises(TypeError, match="not a Module"):
        nn.ModuleList([tj.zeros(1)])


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


class FrozenBatchNorm(nn.BatchNorm1d):
    """The frozen-BatchNorm pattern: always in eval, whatever its parent is set to."""

    def train(self, mode=True):
        return super().train(False)


def test_train_recurses_through_each_childs_own_train():
    frozen = FrozenBatchNorm(3)
    net = nn.Sequential(nn.Linear(4, 3), nn.Sequential(frozen, nn.ReLU()))
    assert net.train() is net
    assert [m.training for m in net.modules()] == [True, True, True, False, True]
    net.eval()
    net.train(True)
    assert not frozen.training and net[1].training
    # in eval its running statistics stay put while the rest of the model trains
    net(tj.randn(8, 4))
    assert (frozen.running_mean.numpy() == 0).all() and frozen.num_batches_tracked.item() == 0
    calls = []

    class Spy(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)
    net.append(Spy())
    net.eval()
    net.train()
    assert calls == [False, True]          # eval() is train(False), down to the children
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train(1)


def test_to_a_tensor_takes_its_dtype():
    bn = nn.BatchNorm1d(2)
    w, rm = bn.weight, bn.running_mean
    assert bn.to(tj.zeros(1)) is bn and bn.running_mean is rm      # nothing to change
    bn.to(tj.zeros(1, dtype=tj.float64))
    assert bn.weight is w and w.dtype is tj.float64 and bn.running_mean.dtype is tj.float64
    assert bn.num_batches_tracked.dtype is tj.int64
    bn.to(tensor=tj.zeros(1, dtype=tj.float32))
    assert w.dtype is tj.float32
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        bn.to(tj.zeros(1, dtype=tj.int64))
    assert w.dtype is tj.float32
    with pytest.raises(TypeError, match="invalid combination of arguments"):
        bn.to(tj.zeros(1), tj.float64)
    bn.to("cpu", tj.float64, True)                   # (device, dtype, non_blocking)
    assert w.dtype is tj.float64


def test_get_submodule_parameter_buffer():
    net = Net()
    seq = nn.Sequential(net)
    assert seq.get_submodule("") is seq and seq.get_submodule("0.bn") is net.bn
    assert seq.get_parameter("0.bn.weight") is net.bn.weight
    assert seq.get_buffer("0.bn.running_mean") is net.bn.running_mean
    assert seq.get_buffer("0.cache") is net.cache            # non-persistent buffers too
    with pytest.raises(AttributeError, match="Net has no attribute `nope`"):
        seq.get_submodule("0.nope")
    with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
        seq.get_submodule("0.fc1.weight")
    with pytest.raises(AttributeError, match="`running_mean` is not an nn.Parameter"):
        seq.get_parameter("0.bn.running_mean")
    with pytest.raises(AttributeError, match="`training` is not an nn.Parameter"):
        seq.get_parameter("0.training")
    with pytest.raises(AttributeError, match="`weight` is not a buffer"):
        seq.get_buffer("0.bn.weight")
    with pytest.raises(AttributeError, match="BatchNorm1d has no attribute `foo`"):
        seq.get_buffer("0.bn.foo")
    with pytest.raises(AttributeError, match="Sequential has no attribute `1`"):
        seq.get_buffer("1.foo")


class Scale(nn.Module):
    def forward(self, x, scale=1.0):
        if scale == 99:
            raise ValueError("boom")
        return x * scale


def test_hook_order_prepend_and_kwargs():
    m, log = Scale(), []
    m.register_forward_pre_hook(lambda mod, args: log.append("pre"))
    m.register_forward_pre_hook(lambda mod, args: log.append("first"), prepend=True)
    # with_kwargs: the hook sees the keyword arguments and may replace both
    m.register_forward_pre_hook(
        lambda mod, args, kwargs: log.append(("pre_kw", dict(kwargs))) or
        ((args[0] + 1,), {"scale": kwargs["scale"] * 10}), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, out: log.append(("post", out.tolist())))
    m.register_forward_hook(
        lambda mod, args, kwargs, out: log.append(("post_kw", kwargs, args[0].tolist())) or
        out + 1, with_kwargs=True, prepend=True)
    out = m(tj.ones(2), scale=2.0)
    assert out.tolist() == [41.0, 41.0]              # (1 + 1) * 20 + 1
    assert log == ["first", "pre", ("pre_kw", {"scale": 2.0}),
                   ("post_kw", {"scale": 20.0}, [2.0, 2.0]), ("post", [41.0, 41.0])]
    # a pre-hook's single non-tuple result becomes the one argument
    m2 = Scale()
    m2.register_forward_pre_hook(lambda mod, args: args[0] * 3)
    assert m2(tj.ones(1)).tolist() == [3.0]
    bad = Scale()
    bad.register_forward_pre_hook(lambda mod, args, kwargs: 5, with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"forward pre-hook must return None or a tuple of "
                       r"\(new_args, new_kwargs\), but got 5."):
        bad(tj.ones(1))


def test_removing_a_hook_removes_its_flags():
    m = Scale()
    h = m.register_forward_hook(lambda mod, args, kwargs, out: out * 2, with_kwargs=True,
                                always_call=True)
    p = m.register_forward_pre_hook(lambda mod, args, kwargs: None, with_kwargs=True)
    assert m(tj.ones(1)).tolist() == [2.0]
    h.remove()
    p.remove()
    assert not (m._forward_hooks or m._forward_hooks_with_kwargs or
                m._forward_hooks_always_called or m._forward_pre_hooks_with_kwargs)
    assert m(tj.ones(1)).tolist() == [1.0]


def test_always_call_hooks_run_when_forward_raises():
    m, log = Scale(), []
    m.register_forward_hook(lambda mod, args, out: log.append("plain"))
    m.register_forward_hook(lambda mod, args, out: log.append(("always", out)),
                            always_call=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: log.append(("kw", kwargs)),
                            always_call=True, with_kwargs=True)
    with pytest.raises(ValueError, match="boom"):
        m(tj.ones(1), scale=99)
    assert log == [("always", None), ("kw", {"scale": 99})]    # output None: forward raised
    log.clear()
    # a hook that raises: the always_call hooks not yet run still run; their own errors
    # become warnings and the first error propagates

    def broken(mod, args, out):
        raise KeyError("hook")
    m2 = Scale()
    m2.register_forward_hook(broken, always_call=True)
    m2.register_forward_hook(lambda mod, args, out: log.append("after"), always_call=True)
    with pytest.raises(KeyError, match="hook"):
        m2(tj.ones(1))
    assert log == ["after"]
    with pytest.warns(UserWarning, match="always_call=True`` raised an exception"), \
            pytest.raises(ValueError, match="boom"):
        m2(tj.ones(1), scale=99)


def test_forward_hooks_against_torch():
    torch = pytest.importorskip("torch")
    runs = []
    for lib, tensor in ((torch, torch.ones), (tj, tj.ones)):
        class M(lib.nn.Module):
            def forward(self, x, scale=1.0):
                return x * scale
        m, log = M(), []
        m.register_forward_pre_hook(lambda mod, a: log.append("pre"))
        m.register_forward_pre_hook(lambda mod, a: log.append("pre0"), prepend=True)
        m.register_forward_pre_hook(lambda mod, a, k: (a, {"scale": 2.0}), with_kwargs=True)
        m.register_forward_hook(lambda mod, a, o: log.append(o.tolist()))
        m.register_forward_hook(lambda mod, a, k, o: o + k["scale"], with_kwargs=True,
                                prepend=True)
        runs.append((m(tensor(2), scale=5.0).tolist(), log))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("value", [[[1.0, 2.0], [3.0, 4.0]], "x", 3.0])
def test_load_state_dict_refuses_values_that_are_not_tensors(value):
    lin = nn.Linear(2, 2)
    before = lin.weight.detach().numpy().copy()
    for strict in (True, False):
        with pytest.raises(RuntimeError) as e:
            lin.load_state_dict({"weight": value, "bias": tj.zeros(2)}, strict=strict)
        assert str(e.value) == (
            "Error(s) in loading state_dict for Linear:\n\tWhile copying the parameter named "
            f'"weight", expected tracejit.Tensor or a numpy array from checkpoint but received '
            f"{type(value)}")
    assert (lin.weight.detach().numpy() == before).all()


def test_deepcopy_of_a_parameter_leaves_grad_behind():
    lin = nn.Linear(2, 2)
    lin(tj.ones(1, 2)).sum().backward()
    clone = copy.deepcopy(lin)
    assert lin.weight.grad is not None and clone.weight.grad is None     # torch 2.13
    assert clone.weight is not lin.weight and clone.weight.requires_grad
    frozen = nn.Parameter(tj.ones(2), requires_grad=False)
    assert not copy.deepcopy(frozen).requires_grad
    # a plain tensor's grad is copied, as torch's
    t = tj.ones(2, requires_grad=True)
    t.grad = tj.full((2,), 3.0)
    assert copy.deepcopy(t).grad.tolist() == [3.0, 3.0]


def test_deepcopy_refuses_a_module_holding_a_tensor_with_history():
    class Cached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.extra = []
    m = Cached()
    shared = copy.deepcopy(nn.Sequential(m, m.lin))         # memo: shared stays shared
    assert shared[0].lin is shared[1]
    m.extra.append(m.lin(tj.ones(1, 2)))       # a non-leaf, inside a list
    for holder in (m, nn.Sequential(m)):
        with pytest.raises(RuntimeError, match=r"Only Tensors created explicitly by the user "
                           r"\(graph leaves\) support the deepcopy protocol"):
            copy.deepcopy(holder)
    m.extra = [m.extra[0].detach()]
    assert copy.deepcopy(m).extra[0].tolist() == m.extra[0].tolist()
    buf = nn.Module()
    buf.register_buffer("b", tj.ones(2, requires_grad=True) * 2)
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(buf)
