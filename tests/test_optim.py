"""Optimizers' first steps against hand-computed updates (the algorithms as PyTorch documents
them, in float64), parameter groups, zero_grad, state_dict round trips, argument checks, and the
learning-rate schedulers' sequences."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tracejit as tj
from tracejit import nn
from tracejit.optim import lr_scheduler

RNG = np.random.default_rng(4)
P0 = RNG.standard_normal((3, 2))
GRADS = [RNG.standard_normal((3, 2)) for _ in range(4)]


def run(opt_cls, steps=4, **kw):
    p = tj.tensor(P0, requires_grad=True)
    opt = opt_cls([p], **kw)
    out = []
    for g in GRADS[:steps]:
        p.grad = tj.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out, opt


def check(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {i + 1}")


@pytest.mark.parametrize("kw", [
    {"lr": 0.1}, {"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
    {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01, "maximize": True}])
def test_sgd(kw):
    lr, mu = kw["lr"], kw.get("momentum", 0.0)
    damp, wd, nest = kw.get("dampening", 0.0), kw.get("weight_decay", 0.0), kw.get("nesterov")
    p, buf, want = P0.copy(), None, []
    for g in GRADS:
        g = -g if kw.get("maximize") else g
        g = g + wd * p
        if mu:
            buf = g.copy() if buf is None else mu * buf + (1 - damp) * g
            g = g + mu * buf if nest else buf
        p = p - lr * g
        want.append(p)
    got, _ = run(tj.optim.SGD, **kw)
    check(got, want)


@pytest.mark.parametrize("cls,kw", [
    (tj.optim.Adam, {"lr": 0.01}),
    (tj.optim.Adam, {"lr": 0.02, "betas": (0.8, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    (tj.optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (tj.optim.AdamW, {"lr": 0.01}),
    (tj.optim.AdamW, {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    (tj.optim.Adam, {"lr": 0.01, "maximize": True})])
def test_adam_and_adamw(cls, kw):
    lr, (b1, b2) = kw["lr"], kw.get("betas", (0.9, 0.999))
    eps, amsgrad = kw.get("eps", 1e-8), kw.get("amsgrad", False)
    decoupled = cls is tj.optim.AdamW
    wd = kw.get("weight_decay", 1e-2 if decoupled else 0.0)
    p, m, v, vmax, want = P0.copy(), 0.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        g = -g if kw.get("maximize") else g
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps)
        want.append(p)
    got, opt = run(cls, **kw)
    check(got, want)
    st = opt.state_dict()["state"][0]
    assert st["step"].item() == 4 and set(st) >= {"exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("kw", [{"lr": 0.01}, {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1},
                                {"lr": 0.01, "momentum": 0.9}, {"lr": 0.01, "centered": True},
                                {"lr": 0.02, "centered": True, "momentum": 0.5, "eps": 1e-4}])
def test_rmsprop(kw):
    lr, alpha, eps = kw["lr"], kw.get("alpha", 0.99), kw.get("eps", 1e-8)
    mu, wd = kw.get("momentum", 0.0), kw.get("weight_decay", 0.0)
    p, sq, gavg, buf, want = P0.copy(), 0.0, 0.0, 0.0, []
    for g in GRADS:
        g = g + wd * p
        sq = alpha * sq + (1 - alpha) * g * g
        avg = sq
        if kw.get("centered"):
            gavg = alpha * gavg + (1 - alpha) * g
            avg = sq - gavg * gavg
        avg = np.sqrt(avg) + eps
        if mu:
            buf = mu * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        want.append(p)
    got, _ = run(tj.optim.RMSprop, **kw)
    check(got, want)


def test_argument_checks():
    p = [tj.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="empty parameter list"):
        tj.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        tj.optim.Adam(nn.ReLU().parameters())
    with pytest.raises(ValueError, match="Invalid learning rate"):
        tj.optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        tj.optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        tj.optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="iterable of Tensors"):
        tj.optim.SGD(tj.zeros(2, requires_grad=True))
    with pytest.raises(ValueError, match="non-leaf"):
        tj.optim.SGD([tj.zeros(2, requires_grad=True) * 2])
    with pytest.raises(ValueError, match="more than one parameter group"):
        tj.optim.SGD([{"params": p}, {"params": p}], lr=0.1)


def test_param_groups_zero_grad_and_closure():
    a, b = tj.ones(2, requires_grad=True), tj.ones(2, requires_grad=True)
    opt = tj.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]

    def closure():
        opt.zero_grad()
        loss = (a * 2 + b * 3).sum()
        loss.backward()
        return loss
    assert opt.step(closure).item() == 10.0
    assert a.tolist() == pytest.approx([0.8, 0.8]) and b.tolist() == pytest.approx([-2.0, -2.0])
    opt.zero_grad(set_to_none=False)
    assert a.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    c = tj.ones(1, requires_grad=True)
    opt.add_param_group({"params": c, "lr": 0.5})
    assert opt.param_groups[2]["momentum"] == 0.0        # defaults filled in
    named = tj.optim.SGD(nn.Linear(2, 1).named_parameters(), lr=0.1)
    assert named.param_groups[0]["param_names"] == ["weight", "bias"]


def test_state_dict_round_trip_resumes_identically():
    p1 = tj.tensor(P0, requires_grad=True)
    opt1 = tj.optim.Adam([p1], lr=0.05, amsgrad=True)
    for g in GRADS[:2]:
        p1.grad = tj.tensor(g)
        opt1.step()
    sd = opt1.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][0]["lr"] == 0.05
    p2 = tj.tensor(p1.detach().numpy(), requires_grad=True)
    opt2 = tj.optim.Adam([p2], lr=0.05, amsgrad=True)
    opt2.load_state_dict(sd)
    assert opt2.state[p2]["exp_avg"] is not sd["state"][0]["exp_avg"]    # copied
    for g in GRADS[2:]:
        p1.grad, p2.grad = tj.tensor(g), tj.tensor(g)
        opt1.step()
        opt2.step()
    assert (p1.detach().numpy() == p2.detach().numpy()).all()
    # numpy arrays (a converted PyTorch optimizer state) load too
    conv = {"state": {0: {k: v.numpy() for k, v in sd["state"][0].items()}},
            "param_groups": sd["param_groups"]}
    tj.optim.Adam([tj.tensor(P0, requires_grad=True)], lr=0.05, amsgrad=True) \
        .load_state_dict(conv)
    with pytest.raises(ValueError, match="parameter groups"):
        opt2.load_state_dict({"state": {}, "param_groups": []})


def lrs(sched_fn, n=8, lr=1.0):
    opt = tj.optim.SGD([tj.zeros(1, requires_grad=True)], lr=lr)
    sched = sched_fn(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out, sched


def test_schedulers():
    got, _ = lrs(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5))
    assert got == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    got, sched = lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.1))
    want = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(9)]
    assert got == pytest.approx(want)           # the recursive form bounces back after T_max
    got, sched = lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)), lr=0.5)
    assert got == pytest.approx([0.5 / (e + 1) for e in range(9)])
    sd = sched.state_dict()
    assert sd["last_epoch"] == 8 and "optimizer" not in sd
    _, other = lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)), n=0, lr=0.5)
    other.load_state_dict(sd)
    assert other.last_epoch == 8
    got, _ = lrs(lambda o: lr_scheduler.ExponentialLR(o, 0.5), n=3)
    assert got == [1, 0.5, 0.25, 0.125]
    got, _ = lrs(lambda o: lr_scheduler.MultiStepLR(o, [2, 3], 0.1), n=4)
    assert got == pytest.approx([1, 1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("cls,kw,missing", [
    (tj.optim.AdamW, {"lr": 0.05, "weight_decay": 0.3}, ["decoupled_weight_decay"]),
    (tj.optim.Adam, {"lr": 0.05, "amsgrad": True},
     ["amsgrad", "maximize", "decoupled_weight_decay", "foreach", "fused", "capturable"]),
    (tj.optim.SGD, {"lr": 0.1, "momentum": 0.9}, ["nesterov", "maximize", "differentiable"]),
    (tj.optim.RMSprop, {"lr": 0.01, "momentum": 0.5}, ["centered", "foreach", "capturable"])])
def test_load_state_dict_fills_hyperparameters_an_older_checkpoint_lacks(cls, kw, missing):
    """A checkpoint from an older torch lacks the hyperparameters added since (AdamW's
    decoupled_weight_decay before 2.6): loading fills them in, as torch does, and step() runs
    the same update as an optimizer that never lost them."""
    want, opt = run(cls, steps=2, **kw)
    sd = opt.state_dict()
    for name in missing:
        del sd["param_groups"][0][name]
    p = tj.tensor(want[-1], requires_grad=True)
    loaded = cls([p], **kw)
    loaded.load_state_dict(sd)
    assert set(loaded.param_groups[0]) == set(opt.param_groups[0])
    # every value as the optimizer had it, but amsgrad (torch's fallback is False) and
    # momentum for RMSprop (0)
    fallback = {"amsgrad": False, "momentum": 0}
    for name in missing:
        assert loaded.param_groups[0][name] == fallback.get(name, opt.param_groups[0][name])
    p.grad = opt.param_groups[0]["params"][0].grad = tj.tensor(GRADS[2])
    opt.param_groups[0].update({k: loaded.param_groups[0][k] for k in missing})
    opt.step()
    loaded.step()
    np.testing.assert_array_equal(p.detach().numpy(),
                                  opt.param_groups[0]["params"][0].detach().numpy())


def test_adamw_always_decouples_weight_decay_and_load_keeps_param_names():
    opt = tj.optim.AdamW(nn.Linear(2, 1).named_parameters())
    sd = opt.state_dict()
    sd["param_groups"][0]["decoupled_weight_decay"] = False    # as Adam's fallback would be
    del sd["param_groups"][0]["param_names"]
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]


def test_load_state_dict_turns_a_numeric_step_into_a_tensor():
    # torch < 1.12 saved Adam's step count as a number
    _, opt = run(tj.optim.Adam, steps=2, lr=0.01)
    sd = opt.state_dict()
    sd["state"][0]["step"] = 2
    p = tj.tensor(P0, requires_grad=True)
    loaded = tj.optim.Adam([p], lr=0.01)
    loaded.load_state_dict(sd)
    step = loaded.state[p]["step"]
    assert isinstance(step, tj.Tensor) and step.item() == 2.0
    p.grad = tj.tensor(GRADS[0])
    loaded.step()
    assert step.item() == 3.0


IMPL = {"foreach", "fused", "capturable", "differentiable"}
TORCH_SWITCHES = {tj.optim.SGD: {"foreach", "fused", "differentiable"},
                  tj.optim.Adam: IMPL, tj.optim.AdamW: IMPL,
                  tj.optim.RMSprop: {"foreach", "capturable", "differentiable"}}


@pytest.mark.parametrize("cls,kw", [
    (tj.optim.SGD, {"momentum": 0.9, "foreach": True}),
    (tj.optim.SGD, {"momentum": 0.9, "fused": True, "differentiable": False}),
    (tj.optim.Adam, {"foreach": False, "capturable": False, "fused": None}),
    (tj.optim.AdamW, {"fused": True, "differentiable": False}),
    (tj.optim.RMSprop, {"centered": True, "foreach": True, "capturable": False})])
def test_torch_implementation_switches_are_accepted_and_change_nothing(cls, kw):
    plain = {k: v for k, v in kw.items() if k not in IMPL}
    want, _ = run(cls, lr=0.01, **plain)
    got, opt = run(cls, lr=0.01, **kw)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    group = opt.param_groups[0]
    for k, v in kw.items():
        assert group[k] == v and opt.defaults[k] == v
    # the switches a torch optimizer's groups hold, so state dicts round trip
    assert set(opt.defaults) & IMPL == TORCH_SWITCHES[cls]
    sd = opt.state_dict()
    other = cls([tj.tensor(P0, requires_grad=True)], lr=0.01, **plain)
    other.load_state_dict(sd)
    assert {k: other.param_groups[0][k] for k in kw} == kw



def test_torch_implementation_switches_that_are_not_supported():
    p = [tj.zeros(2, requires_grad=True)]
    for cls in (tj.optim.SGD, tj.optim.Adam, tj.optim.AdamW, tj.optim.RMSprop):
        with pytest.raises(NotImplementedError, match="differentiable=True is not supported"):
            cls(p, differentiable=True)
    for cls in (tj.optim.Adam, tj.optim.AdamW, tj.optim.RMSprop):
        with pytest.raises(NotImplementedError, match="capturable=True"):
            cls(p, capturable=True)
    for cls in (tj.optim.SGD, tj.optim.Adam, tj.optim.AdamW):
        with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True`"):
            cls(p, fused=True, foreach=True)
    with pytest.raises(TypeError):
        tj.optim.RMSprop(p, fused=True)            # as torch's RMSprop: no fused kernel
    # RMSprop takes them positionally, in torch's order
    opt = tj.optim.RMSprop(p, 0.01, 0.99, 1e-8, 0.0, 0.0, False, False, True, True)
    assert opt.defaults["foreach"] is True and opt.defaults["maximize"] is True
