"""The learning-rate schedulers added after StepLR & co. (LinearLR, ConstantLR, MultiplicativeLR,
PolynomialLR, SequentialLR, ChainedScheduler, CosineAnnealingWarmRestarts, OneCycleLR, CyclicLR,
ReduceLROnPlateau): their sequences against the formulas PyTorch documents, computed here,
momentum/beta1 cycling, state_dict round trips, resuming with last_epoch, argument errors, and a
compiled training step driven by one. Runs without torch; one test compares with torch where it
is installed."""
from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.jit.backends import default_backend
from tracejit.optim import lr_scheduler as S

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])


def make_opt(cls=tj.optim.SGD, lr=1.0, **kw):
    """Two parameter groups, the second at a third of the learning rate."""
    a, b = tj.zeros(2, requires_grad=True), tj.zeros(3, requires_grad=True)
    return cls([{"params": [a]}, {"params": [b], "lr": lr / 3}], lr=lr, **kw)


def sequence(make, n=12, metrics=None, epochs=None, key="lr", **opt_kw):
    """group 0's `key` (lr, momentum, or beta1 for "betas") after construction and after each of
    n steps; the second group's learning rate is checked to follow the same schedule."""
    opt = make_opt(**opt_kw)
    sched = make(opt)

    def read():
        g0, g1 = opt.param_groups
        assert sched.get_last_lr() == [g0["lr"], g1["lr"]]
        return g0["betas"][0] if key == "betas" else g0[key]
    out = [read()]
    for i in range(n):
        opt.step()
        if metrics is not None:
            sched.step(metrics[i])
        elif epochs is not None:
            sched.step(epochs[i])
        else:
            sched.step()
        out.append(read())
    return out


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


# --- sequences against their formulas

def test_multiplicative_constant_linear_polynomial():
    close(sequence(lambda o: S.MultiplicativeLR(o, lambda e: 0.9)), [0.9 ** e for e in range(13)])
    close(sequence(lambda o: S.MultiplicativeLR(o, lambda e: 1 / e)),
          [1 / math.factorial(e) for e in range(13)])
    # factor until epoch total_iters, then the base learning rate
    close(sequence(lambda o: S.ConstantLR(o, factor=0.5, total_iters=3)),
          [0.5] * 3 + [1.0] * 10)
    close(sequence(lambda o: S.ConstantLR(o)), [1 / 3] * 5 + [1.0] * 8)
    close(sequence(lambda o: S.LinearLR(o, start_factor=0.25, total_iters=4)),
          [0.25 + 0.75 * min(e, 4) / 4 for e in range(13)])
    close(sequence(lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=6)),
          [1 - 0.9 * min(e, 6) / 6 for e in range(13)])
    close(sequence(lambda o: S.LinearLR(o)), [1 / 3 + 2 / 3 * min(e, 5) / 5 for e in range(13)])
    close(sequence(lambda o: S.PolynomialLR(o, total_iters=8, power=2.0)),
          [(1 - min(e, 8) / 8) ** 2 for e in range(13)])
    close(sequence(lambda o: S.PolynomialLR(o)), [1 - min(e, 5) / 5 for e in range(13)])


def warm_restarts(T_0, T_mult, eta_min, epochs):
    """SGDR: T_cur epochs into a period of T_i, which starts at T_0 and grows by T_mult."""
    out = []
    for e in epochs:
        T_i, start = T_0, 0
        while e >= start + T_i:
            start, T_i = start + T_i, T_i * T_mult
        out.append(eta_min + (1 - eta_min) * (1 + math.cos(math.pi * (e - start) / T_i)) / 2)
    return out


@pytest.mark.parametrize("T_0,T_mult,eta_min", [(3, 1, 0.0), (3, 2, 0.1), (2, 3, 0.01)])
def test_cosine_annealing_warm_restarts(T_0, T_mult, eta_min):
    def make(o):
        return S.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min)
    close(sequence(make, n=30), warm_restarts(T_0, T_mult, eta_min, range(31)))
    # fractional epochs (a step per batch: epoch + i / iters), and jumps back and forth
    epochs = [0.25 * i for i in range(1, 40)] + [7, 1, 20.5, 0, 3]
    close(sequence(make, epochs=epochs, n=len(epochs)),
          warm_restarts(T_0, T_mult, eta_min, [0, *epochs]))


def cos_anneal(start, end, pct):
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def lin_anneal(start, end, pct):
    return start + (end - start) * pct


def one_cycle(total, max_lr, pct_start=0.3, anneal=cos_anneal, three_phase=False, div=25.0,
              final_div=1e4, momentum=(0.85, 0.95)):
    """(lrs, momentums) of the 1cycle policy at steps 0..total: phases end at the step
    pct_start * total - 1 (and 2 * pct_start * total - 2), the last at total - 1."""
    lo, hi = max_lr / div, max_lr
    m_lo, m_hi = momentum
    end1 = pct_start * total - 1
    if three_phase:
        phases = [(end1, lo, hi, m_hi, m_lo), (2 * pct_start * total - 2, hi, lo, m_lo, m_hi),
                  (total - 1, lo, lo / final_div, m_hi, m_hi)]
    else:
        phases = [(end1, lo, hi, m_hi, m_lo), (total - 1, hi, lo / final_div, m_lo, m_hi)]
    lrs, moms = [], []
    for s in range(total):
        start = 0.0
        for i, (end, a, b, ma, mb) in enumerate(phases):
            if s <= end or i == len(phases) - 1:
                pct = (s - start) / (end - start)
                lrs.append(anneal(a, b, pct))
                moms.append(anneal(ma, mb, pct))
                break
            start = end
    return lrs, moms


@pytest.mark.parametrize("kw,want_kw", [
    ({}, {}),
    ({"anneal_strategy": "linear", "pct_start": 0.25}, {"anneal": lin_anneal, "pct_start": 0.25}),
    ({"three_phase": True, "div_factor": 10.0, "final_div_factor": 100.0},
     {"three_phase": True, "div": 10.0, "final_div": 100.0}),
    ({"base_momentum": 0.8, "max_momentum": 0.99, "anneal_strategy": "linear",
      "three_phase": True}, {"momentum": (0.8, 0.99), "anneal": lin_anneal, "three_phase": True})])
def test_one_cycle(kw, want_kw):
    total = 20
    lrs, moms = one_cycle(total, 0.5, **want_kw)

    def make(o):
        return S.OneCycleLR(o, max_lr=0.5, total_steps=total, **kw)
    close(sequence(make, n=total - 1), lrs)
    # momentum cycles against the learning rate: SGD's momentum, Adam's beta1
    close(sequence(make, n=total - 1, key="momentum", momentum=0.9), moms)
    close(sequence(make, n=total - 1, key="betas", cls=tj.optim.Adam), moms)
    # epochs * steps_per_epoch is total_steps; past it, step() raises
    close(sequence(lambda o: S.OneCycleLR(o, 0.5, epochs=4, steps_per_epoch=5, **kw),
                   n=total - 1), lrs)
    opt = make_opt()
    sched = S.OneCycleLR(opt, 0.5, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of total "
                                         "steps is 2"):
        sched.step()


def test_one_cycle_groups_and_no_momentum_cycling():
    opt = make_opt(tj.optim.AdamW, betas=(0.9, 0.98))
    S.OneCycleLR(opt, max_lr=[0.5, 0.1], total_steps=10, base_momentum=[0.8, 0.7])
    g0, g1 = opt.param_groups
    assert (g0["initial_lr"], g0["max_lr"], g0["min_lr"]) == (0.02, 0.5, 0.02 / 1e4)
    assert g1["initial_lr"] == 0.1 / 25 and g1["lr"] == pytest.approx(0.1 / 25, rel=1e-14)
    assert g0["betas"] == (0.95, 0.98) and (g1["base_momentum"], g1["max_momentum"]) == (0.7, 0.95)
    opt = make_opt(momentum=0.5)
    S.OneCycleLR(opt, max_lr=0.5, total_steps=10, cycle_momentum=False)
    assert opt.param_groups[0]["momentum"] == 0.5 and "max_momentum" not in opt.param_groups[0]


def cyclic(n, lo, hi, up, down, scale=lambda cycle, it: 1.0):
    """CLR: up for `up` iterations from lo to hi, down for `down`, the height scaled."""
    out, size = [], up + down
    for it in range(n + 1):
        cycle, pos = it // size + 1, it % size
        frac = pos / up if pos <= up else (size - pos) / down
        out.append(lo + (hi - lo) * frac * scale(cycle, it))
    return out


@pytest.mark.parametrize("kw,scale", [
    ({}, lambda c, i: 1.0),
    ({"step_size_down": 6}, lambda c, i: 1.0),
    ({"mode": "triangular2"}, lambda c, i: 0.5 ** (c - 1)),
    ({"mode": "exp_range", "gamma": 0.9}, lambda c, i: 0.9 ** i),
    ({"scale_fn": lambda x: 1 / x}, lambda c, i: 1 / c),
    ({"scale_fn": lambda x: 0.95 ** x, "scale_mode": "iterations"}, lambda c, i: 0.95 ** i)])
def test_cyclic(kw, scale):
    down = kw.get("step_size_down", 4)

    def make(o):
        return S.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=4, **kw)
    close(sequence(make, n=30), cyclic(30, 0.1, 1.0, 4, down, scale))
    # momentum from max_momentum at base_lr down to base_momentum at max_lr
    moms = [0.9 - (m - 0.1) / 0.9 * 0.1 for m in cyclic(30, 0.1, 1.0, 4, down, scale)]
    close(sequence(make, n=30, key="momentum", momentum=0.5), moms)
    close(sequence(make, n=30, key="betas", cls=tj.optim.Adam), moms)


def test_cyclic_sets_each_groups_bounds():
    opt = make_opt(momentum=0.9)
    sched = S.CyclicLR(opt, base_lr=[0.1, 0.2], max_lr=[1.0, 0.5], step_size_up=1,
                       base_momentum=[0.8, 0.7], max_momentum=0.95)
    assert sched.get_last_lr() == [0.1, 0.2]
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]
    sched.step()
    assert sched.get_last_lr() == [1.0, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == pytest.approx([0.8, 0.7])
    opt = make_opt(momentum=0.9)
    S.CyclicLR(opt, 0.1, 1.0, cycle_momentum=False)
    assert opt.param_groups[0]["momentum"] == 0.9


def plateau(metrics, lr=1.0, mode="min", factor=0.1, patience=10, threshold=1e-4,
            threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
    """ReduceLROnPlateau as its documentation states it."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    out = [lr]
    for m in metrics:
        if threshold_mode == "rel":
            bar = best * (1 - threshold if mode == "min" else 1 + threshold)
        else:
            bar = best - threshold if mode == "min" else best + threshold
        if (m < bar) if mode == "min" else (m > bar):
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            lr = new if lr - new > eps else lr
            cool, bad = cooldown, 0
        out.append(lr)
    return out


RNG = np.random.default_rng(0)
METRICS = {"falling": list(1 / np.arange(1, 41) + RNG.uniform(0, 0.05, 40)),
           "stuck": [1.0] * 4 + [0.99995] * 10 + [0.5] + [0.6] * 25,
           "rising": list(np.cumsum(RNG.uniform(-0.3, 1, 40)))}


@pytest.mark.parametrize("kw", [
    {}, {"patience": 2}, {"patience": 0, "factor": 0.5, "cooldown": 2},
    {"mode": "max", "patience": 1, "factor": 0.3},
    {"threshold_mode": "abs", "threshold": 0.01, "patience": 1},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.1, "patience": 0},
    {"patience": 0, "factor": 0.5, "min_lr": 0.05, "eps": 0.02}])
@pytest.mark.parametrize("metrics", list(METRICS))
def test_reduce_lr_on_plateau(kw, metrics):
    m = METRICS[metrics]
    close(sequence(lambda o: S.ReduceLROnPlateau(o, **kw), metrics=m, n=len(m)),
          plateau(m, **kw))


def test_reduce_lr_on_plateau_per_group_floor_and_tensor_metric():
    opt = make_opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=[0.2, 0.25])
    sched.step(tj.tensor(1.0))                # a 0-d tensor metric
    for _ in range(4):
        sched.step(tj.tensor(2.0))
    assert sched.get_last_lr() == [0.2, 0.25] and sched.last_epoch == 5
    opt.add_param_group({"params": [tj.zeros(1, requires_grad=True)], "lr": 1.0})
    with pytest.raises(RuntimeError, match="number of param groups"):
        sched.step(3.0)
    opt = make_opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=0.3)
    opt.add_param_group({"params": [tj.zeros(1, requires_grad=True)], "lr": 1.0})
    sched.step(1.0)
    sched.step(2.0)                           # one floor covers the new group
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.3, 0.5]


def test_sequential():
    # ConstantLR for 3 epochs (its factor lifted at its epoch 2), then ExponentialLR from its
    # epoch 0 at epoch 3, then StepLR restarted at epoch 6
    def make(o):
        return S.SequentialLR(o, [S.ConstantLR(o, 0.1, total_iters=2), S.ExponentialLR(o, 0.5),
                                  S.StepLR(o, 2, 0.1)], milestones=[3, 6])
    close(sequence(make, n=10), [0.1, 0.1, 1.0, 1.0, 0.5, 0.25, 1.0, 1.0, 0.1, 0.1, 0.01])
    # warmup then cosine annealing, the usual pairing
    close(sequence(lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.2, total_iters=4),
                                                S.CosineAnnealingLR(o, T_max=8)], [4])),
          [0.2 + 0.8 * e / 4 for e in range(4)] +
          [(1 + math.cos(math.pi * e / 8)) / 2 for e in range(9)])


def test_chained():
    close(sequence(lambda o: S.ChainedScheduler([S.ConstantLR(o, 0.1, total_iters=2),
                                                 S.ExponentialLR(o, 0.9)])),
          [0.9 ** e * (0.1 if e < 2 else 1.0) for e in range(13)])
    close(sequence(lambda o: S.ChainedScheduler([S.LinearLR(o, 0.5, total_iters=2),
                                                 S.StepLR(o, 3, 0.5)], optimizer=o)),
          [(0.5 + 0.5 * min(e, 2) / 2) * 0.5 ** (e // 3) for e in range(13)])


def test_step_with_an_epoch_uses_the_closed_form_and_warns():
    opt = make_opt()
    sched = S.LinearLR(opt, 0.2, total_iters=10)
    with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(5)
    assert sched.get_last_lr() == pytest.approx([0.6, 0.2])
    with pytest.warns(UserWarning, match="epoch parameter"):
        S.ReduceLROnPlateau(opt).step(1.0, epoch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # as torch: this one takes epochs without warning
        S.CosineAnnealingWarmRestarts(opt, 2).step(1.5)


# --- state_dict round trips and resuming

SCHEDULERS = {     # (the schedulers module, an optimizer) -> a scheduler
    "MultiplicativeLR": lambda S, o: S.MultiplicativeLR(o, lambda e: 0.9),
    "ConstantLR": lambda S, o: S.ConstantLR(o, 0.25, 6),
    "LinearLR": lambda S, o: S.LinearLR(o, 0.1, 0.8, 9),
    "PolynomialLR": lambda S, o: S.PolynomialLR(o, 14, 1.5),
    "CosineAnnealingWarmRestarts": lambda S, o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.01),
    "OneCycleLR": lambda S, o: S.OneCycleLR(o, 0.5, 40, three_phase=True),
    "CyclicLR": lambda S, o: S.CyclicLR(o, 0.1, 1.0, 3, mode="exp_range", gamma=0.9),
    "SequentialLR": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.2, total_iters=3), S.CyclicLR(o, 0.1, 1.0, 2)], [3]),
    "ChainedScheduler": lambda S, o: S.ChainedScheduler(
        [S.ConstantLR(o, 0.5, 4), S.CosineAnnealingWarmRestarts(o, 5)]),
}


def _state(opt):
    return [(g["lr"], g["momentum"]) for g in opt.param_groups]


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_round_trip_continues_the_schedule(name):
    n, k = 14, 6
    opt = make_opt(momentum=0.9)
    sched = SCHEDULERS[name](S, opt)
    for i in range(n):
        if i == k:
            # what a checkpoint holds, pickled as tj.save would (lambdas are left out)
            saved = pickle.loads(pickle.dumps((opt.state_dict(), sched.state_dict())))
        opt.step()
        sched.step()
    want = _state(opt)
    opt2 = make_opt(momentum=0.9)
    sched2 = SCHEDULERS[name](S, opt2)
    opt2.load_state_dict(saved[0])
    sched2.load_state_dict(saved[1])
    assert sched2.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    for _ in range(k, n):
        opt2.step()
        sched2.step()
    assert _state(opt2) == want and sched2.get_last_lr() == sched.get_last_lr()


def test_reduce_lr_on_plateau_state_dict_round_trip():
    m = METRICS["falling"]
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", patience=1, cooldown=1, factor=0.5)
    for x in m[:10]:
        sched.step(x)
    saved = pickle.loads(pickle.dumps((opt.state_dict(), sched.state_dict())))
    opt2 = make_opt()
    sched2 = S.ReduceLROnPlateau(opt2)        # its settings come from the state dict
    opt2.load_state_dict(saved[0])
    sched2.load_state_dict(saved[1])
    for x in m[10:]:
        sched.step(x)
        sched2.step(x)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert (sched2.mode, sched2.best, sched2.last_epoch) == ("max", sched.best, 40)


RESUMABLE = {     # (optimizer, last_epoch) -> a scheduler
    "MultiplicativeLR": lambda o, e: S.MultiplicativeLR(o, lambda x: 1 - x / 20, last_epoch=e),
    "ConstantLR": lambda o, e: S.ConstantLR(o, 0.25, 6, last_epoch=e),
    "LinearLR": lambda o, e: S.LinearLR(o, 0.1, 0.8, 9, last_epoch=e),
    "PolynomialLR": lambda o, e: S.PolynomialLR(o, 14, 1.5, last_epoch=e),
    # (with T_mult > 1 torch's resume restarts the periods from T_0: not the same schedule)
    "CosineAnnealingWarmRestarts": lambda o, e: S.CosineAnnealingWarmRestarts(o, 3, 1, 0.01,
                                                                              last_epoch=e),
    "OneCycleLR": lambda o, e: S.OneCycleLR(o, 0.5, 15, three_phase=True, last_epoch=e),
    "CyclicLR": lambda o, e: S.CyclicLR(o, 0.1, 1.0, 3, mode="exp_range", gamma=0.9,
                                        last_epoch=e),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
@pytest.mark.parametrize("k", [1, 5])
def test_resume_with_last_epoch(name, k):
    """A scheduler built with last_epoch=k - 1 over the optimizer state of epoch k (what
    torch's examples do) goes on as the one that ran those epochs: its constructor's step
    keeps the learning rates it finds, or recomputes them for epoch k."""
    make = RESUMABLE[name]
    opt = make_opt(momentum=0.9)
    sched = make(opt, -1)
    for _ in range(k):
        opt.step()
        sched.step()
    opt2 = make_opt(momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    sched2 = make(opt2, k - 1)
    assert sched2.last_epoch == k and _state(opt2) == _state(opt)
    for _ in range(8):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        np.testing.assert_allclose(_state(opt2), _state(opt), rtol=1e-14)
    with pytest.raises(KeyError, match="'initial_lr' is not specified in param_groups\\[0\\]"):
        S.LinearLR(make_opt(), last_epoch=3)


# --- argument errors, as torch's

ERRORS = [
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError, "between 0 and 1"),
    (lambda o: S.LinearLR(o, start_factor=0), ValueError, "Starting multiplicative factor"),
    (lambda o: S.LinearLR(o, end_factor=1.5), ValueError, "Ending multiplicative factor"),
    (lambda o: S.MultiplicativeLR(o, 0.9), TypeError, "lr_lambda should be a function"),
    (lambda o: S.MultiplicativeLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 0), ValueError, "positive integer T_0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 2.0), ValueError, "positive integer T_0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 2, 1.5), ValueError, "integer T_mult >= 1"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, 2, eta_min="0"), ValueError, "float or int"),
    (lambda o: S.OneCycleLR(o, 0.1), ValueError, "either total_steps OR"),
    (lambda o: S.OneCycleLR(o, 0.1, 0), ValueError, "positive integer total_steps"),
    (lambda o: S.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=0), ValueError,
     "positive integer steps_per_epoch"),
    (lambda o: S.OneCycleLR(o, 0.1, 10, pct_start=1), ValueError, "float between 0 and 1"),
    (lambda o: S.OneCycleLR(o, 0.1, 10, anneal_strategy="exp"), ValueError, "'cos' or 'linear'"),
    (lambda o: S.OneCycleLR(o, [0.1], 10), ValueError, "max_lr must have the same length"),
    (lambda o: S.OneCycleLR(o, 0.1, 10, last_epoch=2), KeyError, "initial_lr"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, mode="sine"), ValueError, "mode is invalid"),
    (lambda o: S.CyclicLR(o, [0.1, 0.1, 0.1], 1.0), ValueError, "base_lr must have"),
    (lambda o: S.CyclicLR(object(), 0.1, 1.0), TypeError, "object is not an Optimizer"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="mean"), ValueError, "mode mean is unknown"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold mode pct"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda o: S.SequentialLR(o, [], []), ValueError, "at least one scheduler"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], [3]), ValueError, "one more than the number"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], [3]), ValueError,
     "does not support `ReduceLROnPlateau`"),
    (lambda o: S.SequentialLR(o, [S.StepLR(make_opt(), 2)], []), ValueError,
     "belong to the same optimizer"),
    (lambda o: S.ChainedScheduler([]), ValueError, "at least one scheduler"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2), object()]), TypeError,
     "at index 1 should have `optimizer`"),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_argument_errors(i):
    make, exc, match = ERRORS[i]
    with pytest.raises(exc, match=match):
        make(make_opt())


def test_cycle_momentum_needs_momentum_or_betas():
    class Plain(tj.optim.Optimizer):
        def step(self, closure=None):
            pass
    opt = Plain([tj.zeros(1, requires_grad=True)], {"lr": 0.1})
    for make in (lambda: S.CyclicLR(opt, 0.1, 1.0), lambda: S.OneCycleLR(opt, 0.1, 10)):
        with pytest.raises(ValueError, match="must support momentum or beta1"):
            make()
    S.OneCycleLR(opt, 0.1, 10, cycle_momentum=False)


# --- against torch, where it is installed

def test_match_torch_step_by_step():
    torch = pytest.importorskip("torch")
    cases = [("SGD", {"momentum": 0.9}, name, None) for name in SCHEDULERS] + [
        ("Adam", {}, "OneCycleLR", None), ("Adam", {}, "CyclicLR", None),
        ("SGD", {}, "ReduceLROnPlateau", METRICS["stuck"])]
    for cls, kw, name, metrics in cases:
        seqs = []
        for lib in (torch, tj):
            ps = [lib.zeros(2, requires_grad=True), lib.zeros(1, requires_grad=True)]
            opt = getattr(lib.optim, cls)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.03}],
                                          lr=0.1, **kw)
            LS = lib.optim.lr_scheduler
            sched = LS.ReduceLROnPlateau(opt, patience=1) if metrics else \
                SCHEDULERS[name](LS, opt)
            seq = []
            for i in range(30):
                opt.step()
                sched.step(*([metrics[i]] if metrics else []))
                seq.append([v for g in opt.param_groups
                            for v in (g["lr"], *g.get("betas", ()), g.get("momentum", 0))])
            seqs.append(seq)
        np.testing.assert_allclose(seqs[1], seqs[0], rtol=1e-12, atol=1e-15, err_msg=name)



# --- a compiled training step, the scheduler stepping between calls

def _train(compiled, backend, opt_cls, opt_kw, make_sched, n=8):
    tj.manual_seed(5)
    model = tj.nn.Sequential(tj.nn.Linear(6, 16), tj.nn.ReLU(), tj.nn.Linear(16, 3))
    opt = opt_cls(model.parameters(), **opt_kw)
    sched = make_sched(opt)

    def step(x, y):
        loss = tj.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    fn = tj.compile(step, backend=backend) if compiled else step
    rng = np.random.default_rng(1)
    losses, hyper = [], []
    for _ in range(n):
        x = tj.tensor(rng.standard_normal((32, 6)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 3, 32))
        losses.append(fn(x, y).item())
        g = opt.param_groups[0]
        hyper.append((g["lr"], g.get("momentum"), g.get("betas")))
        sched.step()
    return losses, [p.detach().numpy() for p in model.parameters()], hyper, fn


STEP_OPTIMIZERS = [(tj.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
                   (tj.optim.AdamW, {"lr": 0.01})]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt_cls,opt_kw", STEP_OPTIMIZERS)
@pytest.mark.parametrize("cycle_momentum", [False, True])
def test_compiled_training_step_follows_one_cycle(backend, opt_cls, opt_kw, cycle_momentum):
    """The compiled step reads the learning rate from its group on every call: OneCycleLR
    moving it does not recompile. The momentum (beta1) it also cycles is a constant of the
    trace, guarded: a new value retraces, so each step still uses the scheduler's value."""
    def make(opt):
        return S.OneCycleLR(opt, max_lr=10 * opt_kw["lr"], total_steps=8,
                            cycle_momentum=cycle_momentum)
    want, w_params, w_hyper, _ = _train(False, backend, opt_cls, opt_kw, make)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no graph break, no recompile limit
        got, g_params, g_hyper, fn = _train(True, backend, opt_cls, opt_kw, make)
    assert g_hyper == w_hyper and len({h[0] for h in g_hyper}) == 8
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(g_params, w_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    if not cycle_momentum:
        assert fn.compiles == 1   # (the first step ran eagerly: it creates the state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_training_step_with_warmup_then_restarts(backend):
    """SequentialLR (linear warmup, then cosine annealing with warm restarts) changes only
    learning rates: one compile for the whole run."""
    def make(opt):
        return S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=3),
                                    S.CosineAnnealingWarmRestarts(opt, 2)], [3])
    opt_cls, opt_kw = STEP_OPTIMIZERS[0]
    want, w_params, w_hyper, _ = _train(False, backend, opt_cls, opt_kw, make)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, g_params, g_hyper, fn = _train(True, backend, opt_cls, opt_kw, make)
    assert g_hyper == w_hyper and fn.compiles == 1
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(g_params, w_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
