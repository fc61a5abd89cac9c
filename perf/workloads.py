"""The workloads W1..W7 of WORKLOADS.md, as tracejit code.

Each builder returns `Workload`s: the `Case` to time eager and compiled (the function that
`tj.compile` captures, its inputs, the tensors whose gradients are checked, what runs eagerly
after backward), the floor (bytes that must move, or FLOPs for matmul-bound work), a line saying
what is compiled, and the numpy inputs the peers (perf/peers.py) start from. Sizes follow
WORKLOADS.md at scale "full"; "quick" shrinks the big ones, "tiny" is for the tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise

import numpy as np

import tracejit as tj
from tracejit.utils.benchmark import Case

SCALES = ("full", "quick", "tiny")
LR, MOMENTUM = 0.01, 0.9


@dataclass
class Workload:
    id: str  # "W1"
    name: str  # "gelu_chain"
    size: str  # as printed: "N=2**24"
    case: Case
    floor_kind: str | None  # "memory" (floor_amount in bytes), "blas" (FLOPs) or None
    floor_amount: float
    compiled_part: str  # what tj.compile captures; the rest runs eagerly
    data: dict = field(default_factory=dict)  # numpy inputs for the peers
    headline: bool = True  # the size W6 measures
    notes: list = field(default_factory=list)


# --- the nn pieces, from tracejit.nn when it has them ---------------------------------------
def _functional(name: str):
    """tj.nn.functional.<name>, or None while tracejit.nn does not provide it yet."""
    return _module_attr("nn.functional", name)


def gelu_tanh(z):
    """gelu with the tanh approximation, spelled out as in WORKLOADS.md (fallback)."""
    return 0.5 * z * (1.0 + ((z + 0.044715 * z * z * z) * 0.7978845608).tanh())


def layer_norm(x, shape, weight, bias, eps: float = 1e-5):
    """layer_norm over the last dimension, from primitives (fallback)."""
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(-1, keepdim=True)
    return xc * (var + eps).rsqrt() * weight + bias


def cross_entropy(logits, target):
    """Mean negative log-likelihood of integer targets (fallback)."""
    lp = logits.log_softmax(-1)
    return -lp.gather(1, target.unsqueeze(1)).mean()


def _module_attr(module: str, name: str):
    """tracejit.<module>.<name>, or None while it is not written yet."""
    import importlib
    try:
        return getattr(importlib.import_module(f"tracejit.{module}"), name, None)
    except ImportError:
        return None


def _pick(name: str, fallback, notes: list):
    f = _functional(name)
    if f is None:
        notes.append(f"tj.nn.functional.{name} missing: perf's own composite {name} used")
        return fallback
    return f


# --- builders -------------------------------------------------------------------------------
def _t(a: np.ndarray, grad: bool = False, device: str = "cpu"):
    return tj.tensor(a, requires_grad=grad, device=device)


def w1(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    sizes = {"full": [24, 10, 16, 20], "quick": [20, 16], "tiny": [10]}[scale]
    out = []
    for i, p in enumerate(sizes):
        notes: list = []
        gelu = _functional("gelu")
        if gelu is None:
            notes.append("tj.nn.functional.gelu missing: gelu_tanh written out")
            act = gelu_tanh
        else:
            def act(z, gelu=gelu):
                return gelu(z, approximate="tanh")

        def loss(x, w, b, act=act):
            return act(x * w + b).sum()

        n = 2 ** p
        data = {k: rng.standard_normal(n, dtype=np.float32) for k in "xwb"}
        args = tuple(t_(data[k], True) for k in "xwb")
        case = Case(loss, args, param_names=list("xwb"))
        out.append(Workload("W1", "gelu_chain", f"N=2**{p}", case, "memory",
                            9 * n * 4, "loss = gelu_tanh(x*w+b).sum(); backward via autograd",
                            data, headline=i == 0, notes=notes))
    return out


def _mlp(data: dict, dims: tuple, device: str, ce):
    """W2's model from `data`'s weights: (parameters, optimizer, loss function)."""
    layers = [tj.nn.Linear(a, b) for a, b in pairwise(dims)]
    with tj.no_grad():
        for i, lin in enumerate(layers):
            lin.weight.copy_(_t(data[f"w{i}"]))
            lin.bias.copy_(_t(data[f"b{i}"]))
            lin.to(device)
    params = [p for lin in layers for p in (lin.weight, lin.bias)]
    opt = tj.optim.SGD(params, lr=LR, momentum=MOMENTUM)

    def loss(x, t):
        h = x
        for lin in layers[:-1]:
            h = lin(h).relu()
        return ce(layers[-1](h), t)
    return params, opt, loss


def w2(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    batch, dims = (8, (64, 32, 32, 10)) if scale == "tiny" else (256, (784, 512, 512, 10))
    notes: list = []
    ce = _pick("cross_entropy", cross_entropy, notes)
    data = {"x": rng.standard_normal((batch, dims[0]), dtype=np.float32),
            "t": rng.integers(0, dims[-1], batch).astype(np.int64)}
    for i, (a, b) in enumerate(pairwise(dims)):
        bound = 1.0 / np.sqrt(a)  # torch.nn.Linear's default init range
        data[f"w{i}"] = rng.uniform(-bound, bound, (b, a)).astype(np.float32)
        data[f"b{i}"] = rng.uniform(-bound, bound, b).astype(np.float32)
    nl = len(dims) - 1
    names = [f"{k}{i}" for i in range(nl) for k in "wb"]
    params, opt, loss = _mlp(data, dims, device, ce)

    def after() -> None:
        opt.step()
        opt.zero_grad()

    args = (t_(data["x"]), t_(data["t"]))
    case = Case(loss, args, params=params, after=after, param_names=names)
    pairs = list(pairwise(dims))
    fwd = sum(2 * batch * a * b for a, b in pairs)
    flops = 2 * fwd + sum(2 * batch * a * b for a, b in pairs[1:])  # dW all, dx not for input
    size = "-".join(map(str, dims)) + f" b{batch}"
    out = [Workload("W2", "mlp_step", size, case, "blas", flops,
                    "loss = cross_entropy(mlp(x), t) fwd+bwd; SGD step + zero_grad eager",
                    data, notes=notes)]
    if device == "cpu":
        out.append(_w2_whole_step(data, dims, ce, args, names, size, flops, notes))
    return out


def _w2_whole_step(data, dims, ce, args, names, size, flops, notes) -> Workload:
    """W2 with the whole training step under tj.compile: forward, loss.backward(), the SGD
    step, in one graph. One eager step first creates the momentum buffers (a compiled step is
    traced with them); each checked call starts from the parameters and buffers after it, and
    the peers from those parameters."""
    params, opt, loss = _mlp(data, dims, "cpu", ce)

    def train_step(x, t):
        opt.zero_grad()
        value = loss(x, t)
        value.backward()
        opt.step()
        return value
    train_step(*args)
    saved = [(p, p.detach().clone()) for p in params] + \
        [(opt.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"].clone())
         for p in params]

    def reset() -> None:
        with tj.no_grad():
            for t, v in saved:
                t.copy_(v)
    start = dict(data, **{n: p.detach().numpy().copy() for n, p in zip(names, params)})
    case = Case(train_step, args, params=params, backward_inside=True, reset=reset,
                param_names=names)
    return Workload("W2", "mlp_step", size + " whole step", case, "blas", flops,
                    "the whole training step: forward, loss.backward(), SGD step, zero_grad",
                    start, headline=False, notes=notes)


def w3(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    r, c = {"full": (4096, 1024), "quick": (1024, 1024), "tiny": (8, 64)}[scale]
    notes: list = []
    ln = _pick("layer_norm", layer_norm, notes)
    data = {"x": rng.standard_normal((r, c), dtype=np.float32),
            "w": (1.0 + 0.1 * rng.standard_normal(c)).astype(np.float32),
            "b": (0.1 * rng.standard_normal(c)).astype(np.float32)}

    def loss(x, w, b):
        return (ln(x, (c,), w, b) * x).sum()

    args = tuple(t_(data[k], True) for k in "xwb")
    nbytes = (3 * r * c + 4 * c) * 4  # read x (fwd), read x + write dx (bwd); w, b, dw, db
    case = Case(loss, args, param_names=["x", "weight", "bias"])
    return [Workload("W3", "layernorm", f"{r}x{c}", case, "memory", nbytes,
                     "loss = (layer_norm(x)*x).sum(); backward via autograd", data, notes=notes)]


def w4(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    r, k = {"full": (8192, 1000), "quick": (2048, 1000), "tiny": (8, 10)}[scale]
    notes: list = []
    ce = _pick("cross_entropy", cross_entropy, notes)
    data = {"logits": rng.standard_normal((r, k), dtype=np.float32),
            "t": rng.integers(0, k, r).astype(np.int64)}
    case = Case(ce, (t_(data["logits"], True), t_(data["t"])), param_names=["logits"])
    nbytes = 3 * r * k * 4 + 2 * r * 8  # logits read twice, grad written; targets read twice
    return [Workload("W4", "softmax_xent", f"{r}x{k}", case, "memory", nbytes,
                     "loss = cross_entropy(logits, t); backward via autograd", data, notes=notes)]


def w5(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    data = {k: rng.standard_normal(16, dtype=np.float32) for k in "xy"}

    def f(x, y):
        return (x * y + 1.0).relu()

    number = {"full": 2000, "quick": 300, "tiny": 20}[scale]
    case = Case(f, (t_(data["x"]), t_(data["y"])), backward=False, number=number)
    return [Workload("W5", "call_overhead", "(16,)", case, None, 0.0,
                     "f(x, y) = (x*y + 1.0).relu(), no grad; time per call", data)]


def w7(scale: str, rng: np.random.Generator, device: str) -> list[Workload]:
    t_ = partial(_t, device=device)
    # --quick unrolls 16 steps, not 32: the compile time of the 32-step graph dominates it
    t, b, i, h = {"full": (32, 64, 128, 256), "quick": (16, 64, 128, 256),
                  "tiny": (3, 4, 8, 16)}[scale]
    data = {"xs": rng.standard_normal((t, b, i), dtype=np.float32),
            "wx": (rng.standard_normal((i, h)) / np.sqrt(i)).astype(np.float32),
            "wh": (rng.standard_normal((h, h)) / np.sqrt(h)).astype(np.float32),
            "b": (0.1 * rng.standard_normal(h)).astype(np.float32),
            "h0": np.zeros((b, h), np.float32)}

    def loss(xs, wx, wh, bias, h0):
        hid = h0
        for s in range(xs.shape[0]):
            hid = (xs[s].matmul(wx) + hid.matmul(wh) + bias).tanh()
        return hid.sum()

    args = (t_(data["xs"]), t_(data["wx"], True), t_(data["wh"], True), t_(data["b"], True),
            t_(data["h0"]))
    # forward 2 matmuls a step; backward dWx, dWh every step and dh for all but the first
    flops = t * (2 * 2 * b * i * h + 2 * 2 * b * h * h) + (t - 1) * 2 * b * h * h
    case = Case(loss, args, param_names=["W_x", "W_h", "b"])
    return [Workload("W7", "rnn_unrolled", f"T{t} B{b} I{i} H{h}", case, "blas",
                     flops, f"the unrolled RNN and loss, fwd+bwd ({t} steps in one graph)", data)]


def device_for(backend: str) -> str:
    """Where the workloads' tensors live: on the GPU for the CUDA backend (eager runs there
    too), else on the CPU."""
    return "cuda" if backend == "cuda" else "cpu"


BUILDERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7}
W6_SOURCES = ("W1", "W2", "W3", "W4")  # W6 is the compile latency of these


def build(wid: str, scale: str, seed: int = 0, device: str = "cpu") -> list[Workload]:
    """The workloads of one id at one scale (W1 has several sizes, the headline first), their
    tensors on `device`; on 'cuda' every timed step ends with a synchronize."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    tj.manual_seed(seed)  # nn.Linear's own init, overwritten but kept deterministic
    out = BUILDERS[wid](scale, np.random.default_rng(seed), device)
    if device != "cpu":
        for wl in out:
            wl.case.sync = tj.cuda.synchronize
    return out
