"""The CUDA backend against CPU eager: every op of the table forward and backward, the fused
kernel patterns of the compiled path, devices and their errors.

Without a GPU this runs under Numba's CUDA simulator (set here when no NVIDIA driver is present;
CI sets NUMBA_ENABLE_CUDASIM=1), so sizes stay tiny. Every kernel the tests generate is recorded;
the last test compiles each one to PTX for a real GPU (sm_90) with numba's own typing when NVVM is
installed (it is not in CI), which catches what the simulator cannot: numba typing errors.
"""
import ctypes.util
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

if not os.environ.get("NUMBA_ENABLE_CUDASIM") and not (
        os.path.exists("/dev/nvidia0") or ctypes.util.find_library("cuda")):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
pytest.importorskip("numba.cuda")

import tracejit as tj
from inplace_cases import inplace_case
from tracejit.ops import REGISTRY
from tracejit.tensor import apply

if not tj.cuda.is_available():
    pytest.skip(f"CUDA unavailable: {tj.cuda._state['why']}", allow_module_level=True)

from tracejit.codegen.cuda import loader

RNG = np.random.default_rng(0)
TOL = {"rtol": 2e-5, "atol": 2e-6}
RECORDED: dict = {}


@pytest.fixture(autouse=True, scope="module")
def record_kernels():
    """Keep (source, name, argument types) of every launch for the PTX check at the end."""
    if not loader.SIM:
        yield
        return
    orig = loader._sim_kernel

    def rec(source, name):
        k = orig(source, name)

        class Launch:
            def __getitem__(self, cfg):
                run = k[cfg]

                def call(*args):
                    RECORDED[(source, name, "(" + ", ".join(map(_nbtype, args)) + ")")] = 1
                    return run(*args)
                return call
        return Launch()
    loader._sim_kernel = rec
    yield
    loader._sim_kernel = orig


def _nbtype(a) -> str:
    if hasattr(a, "shape") and not isinstance(a, np.generic):
        return {"bool": "boolean"}.get(np.dtype(a.dtype).name, np.dtype(a.dtype).name) + "[::1]"
    return "boolean" if isinstance(a, bool) else "int64" if isinstance(a, int) else "float64"


def both(a: np.ndarray, rg=False):
    """The same values as a CPU tensor and a CUDA tensor."""
    c = tj.tensor(a, requires_grad=rg)
    g = tj.tensor(a, device="cuda", requires_grad=rg)
    return c, g


def close(gpu, cpu, **tol) -> None:
    assert gpu.device == tj.device("cuda"), gpu.device
    np.testing.assert_allclose(gpu.cpu().detach().numpy(), cpu.detach().numpy(),
                               **(tol or TOL))


# --- devices and their errors -------------------------------------------------------------

def test_devices_and_transfers():
    x = tj.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    assert x.is_cuda and str(x.device) == "cuda:0" and x.cpu().device == tj.device("cpu")
    assert x.cuda() is x and tj.ones(2).to("cuda").is_cuda and tj.zeros(2, device="cuda").is_cuda
    assert "device='cuda:0'" in repr(x)
    assert x.sum().item() == 10.0 and x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and bool(x[0, 0])
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        x.numpy()
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but "
                                           "found at least two devices, cuda:0 and cpu!"):
        x + tj.ones(2)
    assert (x * tj.tensor(2.0)).is_cuda          # 0-d CPU tensors mix, as in torch
    with pytest.raises(RuntimeError, match="float16 is not supported on CUDA"):
        tj.ones(2, dtype=tj.float16).cuda()
    assert tj.zeros_like(x).is_cuda and x.new_ones(3).is_cuda and tj.cuda.device_count() >= 1


def test_grad_flows_across_devices():
    a = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (a.cuda() * 3.0).sum()
    y.backward()
    assert a.grad.device == tj.device("cpu") and a.grad.tolist() == [3.0, 3.0, 3.0]


def test_unavailable_cuda_says_why(monkeypatch):
    monkeypatch.setitem(tj.cuda._state, "backend", None)
    monkeypatch.setitem(tj.cuda._state, "why", "no usable NVIDIA driver (test)")
    with pytest.raises(RuntimeError, match="no usable NVIDIA driver.*device='cpu'.*"
                                           "NUMBA_ENABLE_CUDASIM"):
        tj.zeros(2, device="cuda")
    assert not tj.cuda.is_available()


def test_missing_numba_cuda_is_reported():
    code = ("import sys; sys.modules['numba'] = None; import tracejit as tj\n"
            "print(tj.cuda.is_available())\n"
            "try:\n    tj.ones(2).cuda()\nexcept RuntimeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.startswith("False") and "numba-cuda is not installed" in out.stdout


# --- every op of the table, eager, forward and backward -----------------------------------

def _inputs(op, dtype):
    lo, hi = op.domain
    shapes = [(3, 4), (4,), (3, 1)][:max(op.nin, 1)]
    out = []
    for i, s in enumerate(shapes):
        if i < getattr(op, "cond_inputs", 0) or dtype == "bool":
            out.append(RNG.random(s) > 0.5)
        elif dtype == "int64":
            out.append(RNG.integers(1 if lo > 0 else -3, 4, s).astype(np.int64))
        else:
            out.append(RNG.uniform(lo, hi, s).astype(dtype))
    return out


ELEMENTWISE = sorted(n for n, op in REGISTRY.items() if op.kind == "elementwise")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_op_forward_backward(name):
    op = REGISTRY[name]
    params = {"dtype": "float64"} if name == "cast" else {}
    dtypes = ["bool"] if op.dtype_rule == "logical" else \
        ["float32"] + (["int64"] if op.int_ok else [])
    for dt in dtypes:
        arrays = _inputs(op, dt)
        rg = dt == "float32" and op.vjp is not None
        pairs = [both(a, rg and a.dtype.kind == "f") for a in arrays]
        cpu = apply(op, *[c for c, _ in pairs], **params)
        gpu = apply(op, *[g for _, g in pairs], **params)
        close(gpu, cpu)
        if rg and cpu.requires_grad:
            w = RNG.standard_normal(cpu.shape).astype(cpu.dtype.np)
            (cpu * tj.tensor(w)).sum().backward()
            (gpu * tj.tensor(w, device="cuda")).sum().backward()
            for c, g in pairs:
                if c.requires_grad and c.grad is not None:
                    close(g.grad, c.grad, rtol=1e-4, atol=1e-5)
    # a Python scalar operand is a kernel argument, not a copy to the GPU
    if op.nin == 2 and op.dtype_rule != "logical":
        c, g = both(_inputs(op, "float32")[0])
        close(apply(op, g, 1.5), apply(op, c, 1.5))


@pytest.mark.parametrize("name", ["sum", "prod", "amax", "amin", "all", "any"])
def test_reductions(name):
    a = RNG.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    if name in ("all", "any"):
        a = a > 1.0
    for dims, keep in [((0, 1, 2), False), ((1,), True), ((0, 2), False), ((2,), False)]:
        c, g = both(a, rg=a.dtype.kind == "f")
        cpu, gpu = apply(REGISTRY[name], c, dims=dims, keepdim=keep), \
            apply(REGISTRY[name], g, dims=dims, keepdim=keep)
        close(gpu, cpu)
        if c.requires_grad:
            cpu.sum().backward()
            gpu.sum().backward()
            close(g.grad, c.grad, rtol=1e-4, atol=1e-5)
    # strided input (a transposed view) and an empty reduction
    c, g = both(a)
    red = REGISTRY[name]
    close(apply(red, g.permute(2, 0, 1), dims=(1,), keepdim=False),
          apply(red, c.permute(2, 0, 1), dims=(1,), keepdim=False))
    close(tj.zeros(3, 0, device="cuda").sum(1), tj.zeros(3, 0).sum(1))


def test_argmax_argmin_and_max_with_indices():
    a = np.array([[1.0, 3.0, 3.0, -1.0], [np.nan, 2.0, np.nan, 0.0], [5.0, 5.0, 5.0, 5.0]],
                 np.float32)
    c, g = both(a)
    for f in ("argmax", "argmin"):
        assert getattr(g, f)(1).tolist() == getattr(c, f)(1).tolist()
        assert getattr(g, f)().item() == getattr(c, f)().item()
    _, i = g.max(1)
    assert i.tolist() == c.max(1).indices.tolist()


def test_movement_and_indexing():
    a = RNG.standard_normal((4, 6)).astype(np.float32)
    c, g = both(a, rg=True)
    idx = np.array([3, 0, 3, 1])
    outs = []
    for x in (c, g):
        i = tj.tensor(idx, device=x.device)
        y = [x.reshape(6, 4), x.t().reshape(-1), x.permute(1, 0)[1:5:2], x[:, None, 2].expand(4, 3),
             x.flip(1), tj.cat([x, x[:2]], 0), tj.stack([x[0], x[1]], 1), x[i], x[1, i],
             x.gather(1, i.reshape(4, 1)), tj.nn.functional.pad(x, (1, 2)), x.split(4, 1)[1]]
        outs.append(y)
        sum((t * (k + 1)).sum() for k, t in enumerate(y)).backward()
    for yg, yc in zip(*outs[::-1]):
        close(yg, yc)
    close(g.grad, c.grad, rtol=1e-4, atol=1e-5)
    z = tj.zeros(5, device="cuda")
    z[tj.tensor([1, 1, 3], device="cuda")] = 2.0
    z[0] = 7.0
    assert z.tolist() == [7.0, 2.0, 0.0, 2.0, 0.0]
    with pytest.raises(IndexError, match="out of range"):   # at the next sync, as CUDA
        g[tj.tensor([9], device="cuda")].cpu()
    assert g[tj.tensor([1], device="cuda")].cpu().shape == (1, 6)


def test_ints_with_index_tensors_place_dims_as_torch():
    """x[1, :, i]: torch applies the int as a select, so the index dims stay where i was,
    (4, 2) here, where numpy's rule would send them first. Eager and compiled, get, set and
    backward."""
    a = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    i = np.array([4, 1])
    w = RNG.standard_normal((4, 2)).astype(np.float32)
    x = tj.tensor(a, device="cuda", requires_grad=True)
    gi = tj.tensor(i, device="cuda")
    y = x[1, :, gi]
    assert y.shape == (4, 2)
    np.testing.assert_array_equal(y.cpu().detach().numpy(), a[1][:, i])
    (y * tj.tensor(w, device="cuda")).sum().backward()
    grad = np.zeros_like(a)
    grad[1][:, i] = w
    np.testing.assert_array_equal(x.grad.cpu().numpy(), grad)
    ref = a.copy()
    ref[1][:, i] = w
    z = tj.tensor(a, device="cuda")
    z[1, :, gi] = tj.tensor(w, device="cuda")
    np.testing.assert_array_equal(z.cpu().numpy(), ref)

    def put(x, i, v):
        y = x * 1.0
        y[1, :, i] = v
        return y, x[1, ..., i]
    f = tj.compile(put)
    out, got = f(tj.tensor(a, device="cuda"), gi, tj.tensor(w, device="cuda"))
    assert next(iter(f.cache.values())).backend == "cuda"
    np.testing.assert_array_equal(out.cpu().numpy(), ref)
    np.testing.assert_array_equal(got.cpu().numpy(), a[1][:, i])


@pytest.mark.parametrize("mapped", [True, False])
def test_index_error_flag_mapped_or_copied(monkeypatch, mapped):
    """The index-error flag is mapped host memory (read at a sync without a copy) or, where
    that cannot be allocated, a device buffer copied back: either way an out-of-range index
    raises at the next synchronisation, once, and the flag is clear again after."""
    from numba import cuda

    from tracejit.codegen.cuda import array as A
    for k, v in (("flag", None), ("armed", False), ("mapped", False)):
        monkeypatch.setitem(A._err, k, v)          # (the flag of other tests comes back after)
    if not mapped:
        def refuse(*a, **k):
            raise MemoryError("no mapped memory")
        monkeypatch.setattr(cuda, "mapped_array", refuse)
    x = tj.arange(6.0, device="cuda")
    bad, good = tj.tensor([2, 9], device="cuda"), tj.tensor([5, 0], device="cuda")
    y = x[bad]                             # queued: nothing raised yet
    with pytest.raises(IndexError, match="out of range"):
        tj.cuda.synchronize()
    tj.cuda.synchronize()                  # reported once
    assert A._err["mapped"] is mapped
    with pytest.raises(IndexError, match="out of range"):
        (x[good] + x[bad]).cpu()           # a copy to the host is a synchronisation too
    assert x[good].tolist() == [5.0, 0.0]
    del y


def test_matmul_forward_backward():
    for sa, sb in [((5, 7), (7, 3)), ((2, 5, 7), (7, 3)), ((3,), (3, 4)),
                   ((2, 1, 3, 4), (5, 4, 2))]:
        a, b = RNG.standard_normal(sa).astype(np.float32), RNG.standard_normal(sb).astype(
            np.float32)
        (ac, ag), (bc, bg) = both(a, True), both(b, True)
        cpu, gpu = ac @ bc, ag @ bg
        close(gpu, cpu, rtol=1e-4, atol=1e-5)
        cpu.sum().backward()
        gpu.sum().backward()
        close(ag.grad, ac.grad, rtol=1e-4, atol=1e-5)
        close(bg.grad, bc.grad, rtol=1e-4, atol=1e-5)
    i = RNG.integers(-3, 3, (3, 4))
    assert (tj.tensor(i, device="cuda") @ tj.tensor(i.T, device="cuda")).tolist() == \
        (i @ i.T).tolist()


def test_compiled_reduction_results_broadcast_back_fill_every_element():
    """A reduction's per-row value stored expanded over the reduced axis (x.sum(1, keepdim=True)
    .expand(...), and the backward of a sum) is written for every element of the row, not
    once per row (the rest held stale pool memory)."""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    cases = [lambda x: x.sum(1, keepdim=True).expand(3, 4),
             lambda x: x.mean(-1, keepdim=True).expand_as(x),
             lambda x: x.amax(1, keepdim=True).expand(3, 4), lambda x: x.sum(0).expand(3, 4),
             lambda x: tj.zeros_like(x) + x.sum(),
             lambda x: (x.softmax(1), x.amax(1, keepdim=True).expand(3, 4) * 2.0)]
    for f in cases:
        got, want = tj.compile(f)(tj.tensor(a, device="cuda")), f(tj.tensor(a))
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            close(g, w, rtol=1e-5, atol=1e-6)
    x = tj.tensor(a, device="cuda", requires_grad=True)
    tj.compile(lambda x, y: (x.sum(1, keepdim=True) * y).sum())(
        x, tj.ones(3, 4, device="cuda")).backward()
    assert x.grad.tolist() == [[4.0] * 4] * 3


def test_devices_of_gradients_conversions_dropout_rnn_states_and_checkpoints(tmp_path):
    x = tj.tensor([1.0, 2.0, 3.0], device="cuda", requires_grad=True)
    (x * 2).sum().backward(tj.tensor(1.0))          # a 0-d CPU gradient moves, as in torch
    assert x.grad.device.type == "cuda"
    with pytest.raises(RuntimeError, match="expected device cuda:0 but got cpu"):
        (x * 2).backward(tj.tensor([1.0, 1.0, 1.0]))
    g = tj.zeros(2, device="cuda", dtype=tj.float64)
    moved = tj.ones(2).to(g)
    assert (moved.device.type, moved.dtype) == ("cuda", tj.float64)
    assert g.new_tensor([1, 2]).device.type == "cuda"
    on = tj.ones(8, device="cuda")
    assert tj.nn.functional.dropout(on, 0.5, training=True).device.type == "cuda"
    assert tj.nn.GRUCell(4, 5).cuda()(tj.randn(2, 4, device="cuda")).device.type == "cuda"
    assert tj.nn.LSTM(4, 3).cuda()(tj.randn(2, 1, 4, device="cuda"))[0].device.type == "cuda"
    w = tj.ones(3, 2, device="cuda")
    for f in (lambda: tj.nn.functional.embedding(tj.tensor([0, 1]), w),
              lambda: w.gather(1, tj.tensor([[0], [1], [0]]))):
        with pytest.raises(RuntimeError, match="same device"):
            f()
    assert w[tj.tensor([0, 1])].device.type == "cuda"       # indexing takes a CPU index
    c = tj.zeros(2, 3, device="cuda")
    c[0] = tj.ones(3)                   # basic indexing copies a CPU value over
    c[1:2] = tj.full((1, 3), 2.0)
    assert c.tolist() == [[1.0] * 3, [2.0] * 3]
    path = str(tmp_path / "ck.pt")
    tj.save({"a": tj.ones(2, device="cuda"), "b": tj.zeros(2)}, path)
    for ml, want in [(None, ("cuda", "cpu")), ({"cuda:0": "cpu"}, ("cpu", "cpu")),
                     ({"cpu": "cuda"}, ("cuda", "cuda")), (lambda s, loc: s, ("cpu", "cpu")),
                     (lambda s, loc: None, ("cuda", "cpu"))]:
        d = tj.load(path, map_location=ml)
        assert (d["a"].device.type, d["b"].device.type) == want


@pytest.mark.parametrize("blocked", [False, True])
def test_matmul_kernels_on_tile_edges_transposed_operands_and_float64(monkeypatch, blocked):
    """Both float kernels (one output per thread; register-blocked): sizes off their tiles,
    each operand row-major or transposed (the blocked kernel's tiles then load along the other
    axis), float64, a general strided view."""
    from tracejit.codegen.cuda import matmul as MM
    monkeypatch.setattr(MM, "BLOCKED", blocked)
    for m, k, n in [(5, 7, 3), (9, 4, 11), (1, 1, 1), (3, 17, 2)]:
        for ta, tb in [(False, False), (True, False), (False, True), (True, True)]:
            dt = np.float64 if (m + ta + tb) % 2 else np.float32
            a = RNG.standard_normal((k, m) if ta else (m, k)).astype(dt)
            b = RNG.standard_normal((n, k) if tb else (k, n)).astype(dt)
            ga, gb = tj.tensor(a, device="cuda"), tj.tensor(b, device="cuda")
            got = (ga.t() if ta else ga) @ (gb.t() if tb else gb)
            assert got.dtype == tj.tensor(a).dtype
            close(got, tj.tensor((a.T if ta else a) @ (b.T if tb else b)), rtol=1e-4,
                  atol=1e-5)
    a = RNG.standard_normal((6, 8)).astype(np.float32)
    g = tj.tensor(a, device="cuda")[::2, 1::2]            # no stride of 1
    close(g @ g.t(), tj.tensor(a[::2, 1::2] @ a[::2, 1::2].T), rtol=1e-4, atol=1e-5)
    assert ("float32", blocked) in MM._kernels and ("float64", blocked) in MM._kernels


def test_training_step_on_the_gpu_matches_the_cpu():
    tj.manual_seed(0)
    cpu = tj.nn.Sequential(tj.nn.Linear(6, 5), tj.nn.ReLU(), tj.nn.Linear(5, 3))
    gpu = tj.nn.Sequential(tj.nn.Linear(6, 5), tj.nn.ReLU(), tj.nn.Linear(5, 3))
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    assert all(p.is_cuda for p in gpu.parameters())
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    t = np.array([0, 2, 1, 2])
    for model in (cpu, gpu):
        dev = next(model.parameters()).device
        opt = tj.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            loss = tj.nn.functional.cross_entropy(model(tj.tensor(x, device=dev)),
                                                  tj.tensor(t, device=dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for pg, pc in zip(gpu.parameters(), cpu.parameters()):
        close(pg, pc, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opt_name", ["momentum", "adam"])
def test_compiled_whole_training_step_on_the_gpu_matches_the_cpu(opt_name):
    """forward, backward(), opt.step() and zero_grad() in one compiled function on CUDA
    tensors: parameters and optimizer state are updated on the GPU as eager does on the CPU (the
    learning rate is a 0-d host input, as torch lets 0-d CPU tensors meet CUDA ones)."""
    import warnings
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    t = np.array([0, 2, 1, 2])
    tj.manual_seed(0)
    ref = tj.nn.Sequential(tj.nn.Linear(6, 5), tj.nn.ReLU(), tj.nn.Linear(5, 3))
    runs = []
    for dev, compiled in (("cpu", False), ("cuda", True)):
        model = tj.nn.Sequential(tj.nn.Linear(6, 5), tj.nn.ReLU(), tj.nn.Linear(5, 3))
        model.load_state_dict(ref.state_dict())
        model.to(dev)
        opt = tj.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "momentum" \
            else tj.optim.Adam(model.parameters(), lr=0.05)

        def step(xb, tb):
            loss = tj.nn.functional.cross_entropy(model(xb), tb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        f = tj.compile(step) if compiled else step
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # no graph break
            losses = [f(tj.tensor(x * (1 + i), device=dev), tj.tensor(t, device=dev)).item()
                      for i in range(4)]
        runs.append((losses, model))
        if compiled:
            assert f.compiles == 1 and next(iter(f.cache.values())).backend == "cuda"
    (want, cpu), (got, gpu) = runs
    np.testing.assert_allclose(got, want, rtol=1e-4)
    for pg, pc in zip(gpu.parameters(), cpu.parameters()):
        assert pg.is_cuda
        close(pg, pc, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["sgd", "transposed", "flip", "row", "sum_after",
                                  "read_after", "swap", "bias_grad"])
def test_compiled_in_place_updates_on_the_gpu_match_eager(case, monkeypatch):
    """The kernel computing an input's new value stores into the input's buffer when it is the
    last reader (no copy-back launch); values are CPU eager's either way."""
    from tracejit.codegen.cuda import eager as ce
    copies = []
    real = ce.copy_into
    monkeypatch.setattr(ce, "copy_into", lambda d, s: (copies.append(d.shape), real(d, s)))
    x0 = RNG.standard_normal((6, 5)).astype(np.float32)
    g0 = RNG.standard_normal(5 if case == "bias_grad" else (6, 5)).astype(np.float32)
    xc, gc = tj.tensor(x0), tj.tensor(g0)
    xg, gg = tj.tensor(x0, device="cuda"), tj.tensor(g0, device="cuda")
    arrays = (xg._data, gg._data)
    cf = tj.compile(lambda x, g: inplace_case(case, x, g))
    for _ in range(2):
        want, got = inplace_case(case, xc, gc), cf(xg, gg)
        if want is not None:
            close(got, want, rtol=1e-5, atol=1e-5)
        close(xg, xc, rtol=1e-5, atol=1e-5)
        close(gg, gc, rtol=1e-5, atol=1e-5)
    assert cf.compiles == 1 and (xg._data, gg._data) == arrays
    if case in ("sgd", "swap", "bias_grad"):
        assert copies == []         # every update stored straight into its tensor


def test_compiled_in_place_update_of_overlapping_gpu_inputs_matches_eager():
    """Inputs sharing a device buffer (views passed as arguments, a view of a closed-over
    tensor) must not be written while the kernel still reads the other one: such calls run
    eagerly, as on the CPU. An argument also updated through a closure stays on the GPU."""
    def f(a, b):
        with tj.no_grad():
            a.add_(b)
    x0 = np.arange(65, dtype=np.float32)
    xc, xg = tj.tensor(x0), tj.tensor(x0, device="cuda")
    f(xc[:-1], xc[1:])
    tj.compile(f)(xg[:-1], xg[1:])
    close(xg, xc)
    y0 = np.arange(36, dtype=np.float32).reshape(6, 6)
    yc, yg = tj.tensor(y0), tj.tensor(y0, device="cuda")
    f(yc, yc.t())
    tj.compile(f)(yg, yg.t())
    close(yg, yc)
    for dev in ("cpu", "cuda"):
        w = tj.tensor(y0 / 10, device=dev)

        def g(wt):
            with tj.no_grad():
                w.mul_(0.5).add_(wt)
            return wt * 2
        cg = tj.compile(g) if dev == "cuda" else g
        outs = [cg(w.t()) for _ in range(2)]
        if dev == "cpu":
            want = (w, outs)
    close(w, want[0])
    for a, b in zip(outs, want[1]):
        close(a, b)
    res = {}
    for dev in ("cpu", "cuda"):
        z = tj.tensor(x0, device=dev)

        def h(a):                   # `a` is z: updated through the closure, read as `a`
            with tj.no_grad():
                z.add_(1)
            return a * 2
        res[dev] = (tj.compile(h) if dev == "cuda" else h)(z), z
    close(res["cuda"][0], res["cpu"][0])
    close(res["cuda"][1], res["cpu"][1])


# --- the compiled path: fused kernels ------------------------------------------------------

def _compiled_vs_eager(fn, arrays, n_kernels=None):
    """Compile fn on CUDA, run it twice (different data), compare values and grads with CPU
    eager; return the compiled function."""
    cf = tj.compile(fn)
    for rep in range(2):
        data = [a * (1 + rep) if a.dtype.kind == "f" else a for a in arrays]
        pc = [tj.tensor(a, requires_grad=a.dtype.kind == "f") for a in data]
        pg = [tj.tensor(a, device="cuda", requires_grad=a.dtype.kind == "f") for a in data]
        yc, yg = fn(*pc), cf(*pg)
        close(yg, yc, rtol=1e-4, atol=1e-5)
        yc.backward()
        yg.backward()
        for c, g in zip(pc, pg):
            if c.requires_grad:
                close(g.grad, c.grad, rtol=1e-4, atol=1e-5)
    assert cf.compiles == 1
    entry = next(iter(cf.cache.values()))
    assert entry.backend == "cuda"
    if n_kernels is not None:
        assert (entry.stats["kernels_forward"], entry.stats["kernels_backward"]) == n_kernels
    return cf


def gelu_tanh(z):
    return 0.5 * z * (1.0 + ((z + 0.044715 * z * z * z) * 0.7978845608).tanh())


def test_compiled_elementwise_chain_and_full_reduction():
    n = 40
    arrays = [RNG.standard_normal(n).astype(np.float32) for _ in range(3)]
    _compiled_vs_eager(lambda x, w, b: gelu_tanh(x * w + b).sum(), arrays, (1, 1))


def test_compiled_split_reductions_keep_their_partials_apart():
    # several reductions split over blocks in one kernel: each needs its own partials buffer
    x = RNG.standard_normal(40).astype(np.float32)
    _compiled_vs_eager(lambda x: x.sum() * (x * x).sum() + x.amax(), [x])
    y = RNG.standard_normal((16, 4)).astype(np.float32)
    _compiled_vs_eager(lambda y: (y.sum(0) * (y * y).sum(0)).sum(), [y])
    w, b = RNG.standard_normal(4).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    _compiled_vs_eager(lambda y, w, b: (tj.nn.functional.layer_norm(y, (4,), w, b) * y).sum(),
                       [y, w, b])


def test_split_reductions_finish_in_one_launch_and_rearm_their_counters():
    # the last block to finish combines the partials: each call must start from counters the
    # previous one reset, or a later call would finish early (or never) with wrong sums
    from perf.cuda_census import Census
    f = tj.compile(lambda x: x.sum() * 2.0 + x.amax())
    g = tj.compile(lambda b: b.all())          # bool partials: still the two-launch finish
    for n in (40, 40, 41, 97):
        x = RNG.standard_normal(n).astype(np.float32)
        c = Census()
        with c.active():
            got = f(tj.tensor(x, device="cuda")).cpu().numpy()
        np.testing.assert_allclose(got, x.sum(dtype=np.float64) * 2 + x.max(), rtol=1e-5)
        assert c.counts["launches"] == 1, c.counts
        b = x > -3.0
        assert bool(g(tj.tensor(b, device="cuda")).item()) == bool(b.all())


def test_pooled_buffers_outlive_reference_cycles():
    # a CudaArray collected with a cycle (an autograd graph) must not take its buffer with it:
    # numba frees memory from a weakref callback, which the cyclic GC runs before __del__
    import gc
    import weakref

    from tracejit.codegen.cuda import array as A
    a = A.empty((5,), np.float32)
    fired: list = []
    weakref.finalize(a.buf, fired.append, True)
    cycle: list = [a]
    cycle.append(cycle)
    del a, cycle
    gc.collect()
    assert not fired        # pooled, alive: the next allocation of its size may reuse it


def test_out_of_memory_retry_frees_what_cycles_held(monkeypatch):
    # the retry after an allocation failure first collects arrays dropped in reference cycles,
    # then empties the pool, so their memory is really given back before allocating again
    import gc

    from tracejit.codegen.cuda import array as A

    class Holder:
        pass
    for _ in range(3):
        h = Holder()
        h.a, h.me = A.empty((4096,), np.float32), h
    del h
    real, calls = A.cuda.device_array, []

    def failing_once(n, dt):
        calls.append(n)
        if len(calls) == 1:
            raise MemoryError("simulated CUDA_ERROR_OUT_OF_MEMORY")
        return real(n, dt)
    gc.disable()
    try:
        monkeypatch.setattr(A.cuda, "device_array", failing_once)
        A._alloc(1 << 20, np.dtype(np.float32))
    finally:
        gc.enable()
    assert len(calls) == 2 and A._pooled[0] == 0 and not any(A._pool.values()), A._pool


def test_backward_seed_reaches_the_gpu_without_an_upload():
    # the implicit seed of a compiled 0-d output is a host scalar; through a view (a matmul's
    # backward reshapes it) it becomes a fill kernel, and a (1,)-shaped output's seed is one
    from perf.cuda_census import Census
    x = tj.tensor(RNG.standard_normal((6, 5)).astype(np.float32), device="cuda",
                  requires_grad=True)
    w = tj.tensor(RNG.standard_normal((5, 4)).astype(np.float32), device="cuda",
                  requires_grad=True)
    for fn in (lambda a, b: (a @ b).sum(), lambda a, b: (a @ b).sum().reshape(1)):
        f = tj.compile(fn)
        f(x, w).backward()
        x.grad = w.grad = None
        c = Census()
        with c.active():
            f(x, w).backward()
        assert c.counts["h2d"] == 0, c.counts
        # the same gradients as eager
        ex, ew = (tj.tensor(t.detach().cpu().numpy(), requires_grad=True) for t in (x, w))
        fn(ex, ew).backward()
        np.testing.assert_allclose(x.grad.cpu().numpy(), ex.grad.numpy(), rtol=1e-5)
        np.testing.assert_allclose(w.grad.cpu().numpy(), ew.grad.numpy(), rtol=1e-5)
        x.grad = w.grad = None


def test_unused_differentiable_outputs_get_zero_gradients_on_the_gpu():
    # `loss, logits = f(...)`; loss.backward(): the logits' gradient is zeros made on the GPU
    # (a fill), not a host array uploaded at every step
    from perf.cuda_census import Census
    x = tj.tensor(RNG.standard_normal((6, 5)).astype(np.float32), device="cuda",
                  requires_grad=True)
    f = tj.compile(lambda x: ((x * x).sum(), x.softmax(-1)))
    for step in range(2):
        x.grad = None
        c = Census()
        with c.active():
            loss, probs = f(x)
            loss.backward()
        assert step == 0 or c.counts["h2d"] == 0, c.counts
        np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * x.detach().cpu().numpy(),
                                   rtol=1e-6)


def test_compiled_row_patterns():
    x = RNG.standard_normal((5, 12)).astype(np.float32)
    w, b = RNG.standard_normal(12).astype(np.float32), RNG.standard_normal(12).astype(np.float32)
    F = tj.nn.functional
    _compiled_vs_eager(lambda x: (x.softmax(-1) * x).sum(), [x])
    _compiled_vs_eager(lambda x, w, b: (F.layer_norm(x, (12,), w, b) * x).sum(), [x, w, b])
    t = RNG.integers(0, 12, 5)
    _compiled_vs_eager(lambda x, t: F.cross_entropy(x, t), [x, t])


def test_compiled_cross_entropy_picks_targets_inside_the_row_kernels():
    """The target gather and its scatter gradient are one-hot selects fused into the row
    kernels (no gather, zeros or scatter launches); an out-of-range target still raises
    IndexError, at the next synchronisation as CUDA reports index errors."""
    x = RNG.standard_normal((6, 5)).astype(np.float32)
    t = np.array([0, 4, 1, 3, 2, 4])
    cf = _compiled_vs_eager(lambda x, t: tj.nn.functional.cross_entropy(x, t), [x, t])
    entry = next(iter(cf.cache.values()))
    outside = [s.op for cg in (entry.fwd, entry.bwd) for kind, s, *_ in cg._steps if kind == "n"]
    assert not {"index", "index_put", "full"} & set(outside), outside
    xg = tj.tensor(x, device="cuda", requires_grad=True)
    loss = cf(xg, tj.tensor(np.array([0, 4, 1, 7, 2, 4]), device="cuda"))
    with pytest.raises(IndexError, match="out of range"):
        loss.item()
    assert cf(xg, tj.tensor(t, device="cuda")).item() == pytest.approx(
        tj.nn.functional.cross_entropy(tj.tensor(x), tj.tensor(t)).item(), rel=1e-5)


def test_compiled_column_reduction_and_matmul():
    x = RNG.standard_normal((16, 6)).astype(np.float32)
    w = RNG.standard_normal((6, 3)).astype(np.float32)
    _compiled_vs_eager(lambda x: (x.sum(0) * x.amax(0)).sum(), [x])
    _compiled_vs_eager(lambda x, w: (x @ w).tanh().mean(), [x, w])


def test_compiled_backend_cuda_on_cpu_tensors_returns_cpu_tensors():
    f = tj.compile(lambda x: (x * 2.0).exp(), backend="cuda")
    x = tj.tensor([0.0, 1.0], requires_grad=True)
    y = f(x)
    assert not y.is_cuda
    np.testing.assert_allclose(y.detach().numpy(), np.exp([0.0, 2.0]), rtol=1e-6)
    y.sum().backward()
    assert not x.grad.is_cuda
    g = tj.compile(lambda a, b: a + b)
    assert not g(tj.ones(2), tj.ones(2)).is_cuda                # the device is part of the key
    assert g(tj.ones(2, device="cuda"), tj.ones(2, device="cuda")).is_cuda and g.compiles == 2
    with pytest.raises(RuntimeError, match="same device"):
        g(tj.ones(2, device="cuda"), tj.ones(2))
    h = tj.compile(lambda a: a + 1, backend="interpret")
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        h(tj.ones(2, device="cuda"))


def test_gpu_configured_kernels_are_recorded_for_the_ptx_check(monkeypatch):
    # what only a GPU generates (warp-shuffle trees, 4x unrolled range loops, ROW blocks of 32+
    # lanes, one-launch split finishes at real grid sizes) never runs under the simulator:
    # generate it here without launching anything, for the PTX check below
    from tracejit.codegen.cuda import array as A
    from tracejit.codegen.cuda import eager, kernels, launch
    if not A.SIM:
        pytest.skip("on a GPU these kernels run (tests above and perf/gpu_check.py)")
    sources: dict = {}
    load = kernels.load

    def tagged(source, name):
        fn = load(source, name)
        sources[id(fn)] = (source, name)
        return fn

    def record(self, args):
        source, name = sources.get(id(self.fn), (None, None))
        if source is not None:
            RECORDED[(source, name, "(" + ", ".join(map(_nbtype, args)) + ")")] = 1
    monkeypatch.setattr(kernels, "load", tagged)
    monkeypatch.setattr(launch.Launch, "run", record)
    monkeypatch.setattr(A, "SIM", False)
    monkeypatch.setattr(A, "_SMS", 132)
    # kernels made here are for the PTX check only: none may be cached for later tests
    monkeypatch.setattr(eager, "_runners", {})
    monkeypatch.setattr(launch, "_launches", {})
    F = tj.nn.functional
    a = tj.tensor(RNG.standard_normal((64, 1000)).astype(np.float32), device="cuda",
                  requires_grad=True)
    w = tj.tensor(np.ones(1000, np.float32), device="cuda", requires_grad=True)
    t = tj.tensor(RNG.integers(0, 1000, 64), device="cuda")
    v = tj.tensor(RNG.standard_normal(100_000).astype(np.float32), device="cuda")
    for fn, args in [
            (lambda a: (a.softmax(-1) * a).sum(), [a]),
            (lambda a, t: F.cross_entropy(a, t), [a, t]),
            (lambda a, w: (F.layer_norm(a, (1000,), w, w) * a).sum(), [a, w]),
            (lambda a: (a.sum(-1) * tj.isnan(a).any(-1)).sum(), [a]),   # float + bool pass
            (lambda a: a.amax(0).sum() + a.int().amax(-1).sum(), [a])]:
        tj.compile(fn)(*args).backward()
    tj.compile(lambda v: v.sum() * v.amax() + tj.isnan(v).any())(v)
    names = [name for _, name, _ in RECORDED]
    assert any(src.count("shfl_xor_sync") and "ok_3" in src for src, _, _ in RECORDED), names


def test_generated_kernels_compile_for_a_real_gpu():
    """Numba's typing and NVVM on every kernel recorded above (skipped without NVVM)."""
    if not RECORDED:
        pytest.skip("no kernels recorded (real GPU run)")
    # NVVM may be found while NVRTC is not (a venv without nvidia-cuda-nvrtc): compile a
    # trivial kernel to see whether PTX compilation works here at all
    probe = ("from numba import cuda\n"
             "def k(a):\n    a[0] = 1.0\n"
             "try:\n    cuda.compile_ptx(k, 'void(float32[::1])', cc=(9, 0)); print(True)\n"
             "except Exception as e:\n    print(type(e).__name__, str(e)[:200])\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                        timeout=120, check=False)
    if ok.stdout.strip() != "True":
        pytest.skip("PTX compilation unavailable here (NVVM/NVRTC, from nvidia-cuda-nvcc and "
                    f"nvidia-cuda-nvrtc): {(ok.stdout + ok.stderr).strip()[-200:]}")
    code = (
        "import json, sys\nfrom numba import cuda\n"
        "from tracejit.codegen.cuda.loader import PRELUDE\nbad = []\n"
        "for src, name, sig in json.load(sys.stdin):\n"
        "    ns = {}\n    exec(PRELUDE + '\\n' + src, ns)\n"
        "    try:\n        cuda.compile_ptx(ns[name], sig, cc=(9, 0))\n"
        "    except Exception as e:\n        bad.append(f'{name}{sig}: {e}\\n{src}')\n"
        "print('\\n\\n'.join(bad) or 'ok')\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(list(RECORDED)),
                         capture_output=True, text=True, env=dict(env, PYTHONPATH=root),
                         timeout=900, check=False)
    assert out.stdout.strip() == "ok", out.stdout[-4000:] + out.stderr[-2000:]


def test_checkpoints_and_copies_across_devices(tmp_path):
    """tj.save of CUDA tensors (a CUDA model's state_dict) loads back to the GPU, or where
    map_location says; copy_ and load_state_dict copy across devices, and an optimizer's
    state follows its parameters' device, as in torch."""
    x = tj.arange(6.0, device="cuda").reshape(2, 3)
    tj.save({"x": x, "c": tj.ones(2)}, tmp_path / "a.pt")
    r = tj.load(tmp_path / "a.pt")
    assert (r["x"].device.type, r["c"].device.type) == ("cuda", "cpu")
    assert r["x"].tolist() == x.tolist()
    assert tj.load(tmp_path / "a.pt", map_location="cpu")["x"].device.type == "cpu"
    assert tj.load(tmp_path / "a.pt", map_location="cuda")["c"].device.type == "cuda"
    c = tj.zeros(3, device="cuda")
    c.copy_(tj.ones(3))
    assert c.device.type == "cuda" and c.tolist() == [1.0, 1.0, 1.0]
    a = tj.ones(3, requires_grad=True)
    c.copy_(a * 2.0)
    c.sum().backward()
    assert a.grad.device.type == "cpu" and a.grad.tolist() == [2.0, 2.0, 2.0]
    net = tj.nn.Linear(3, 2)
    opt = tj.optim.Adam(net.parameters())
    net(tj.randn(4, 3)).sum().backward()
    opt.step()
    net2 = tj.nn.Linear(3, 2).to("cuda")
    net2.load_state_dict(net.state_dict())
    assert net2.weight.device.type == "cuda" and net2.weight.is_leaf
    close(net2.weight.detach(), net.weight.detach())
    opt2 = tj.optim.Adam(net2.parameters())
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[net2.weight]["exp_avg"].device.type == "cuda"
    net2(tj.randn(4, 3, device="cuda")).sum().backward()
    opt2.step()


def test_moving_to_the_host_inside_a_compiled_function_breaks_the_graph():
    """.cpu() of a traced CUDA value is a real move (a graph break: the call runs eagerly,
    with a warning), not dropped; moving to the device a value is on stays in the graph."""
    a = tj.ones(3, device="cuda")
    f = tj.compile(lambda a: a.cpu() * 2.0)
    with pytest.warns(RuntimeWarning, match="moving a tensor to cpu"):
        r = f(a)
    assert r.device.type == "cpu" and r.tolist() == [2.0, 2.0, 2.0]
    assert f(a).device.type == "cpu"
    g = tj.compile(lambda a: a.cuda() * 2.0)
    assert g(a).device.type == "cuda" and g(a).tolist() == [2.0, 2.0, 2.0]
    assert tj.compile(lambda a: a.cpu() * 2.0)(tj.ones(3)).device.type == "cpu"


def test_zero_dim_uploads_and_pooling_helpers_on_the_gpu():
    """A 0-d tensor stays 0-d on the GPU; pooling's and one_hot's helper index tensors are
    made on the input's device."""
    x = tj.tensor(2.0, device="cuda")
    assert tuple(x.shape) == () and tuple((x + x).shape) == () and tuple(x.cpu().shape) == ()
    assert tuple(tj.nn.BatchNorm1d(2).to("cuda").num_batches_tracked.shape) == ()
    v = RNG.standard_normal((1, 1, 4, 4)).astype(np.float32)
    F = tj.nn.functional
    close(F.max_pool2d(tj.tensor(v, device="cuda"), 2), F.max_pool2d(tj.tensor(v), 2))
    close(F.avg_pool2d(tj.tensor(v, device="cuda"), 3, 2, 1, count_include_pad=False),
          F.avg_pool2d(tj.tensor(v), 3, 2, 1, count_include_pad=False))
    assert F.one_hot(tj.tensor([0, 2], device="cuda"), 3).tolist() == [[1, 0, 0], [0, 0, 1]]


def test_views_devices_and_inputs_gaining_grad_in_place():
    """Eager view() of a CUDA tensor; a CPU 0-d leaf used in a CUDA op gets its gradient on
    the CPU (an optimizer can update it); an in-place update making a compiled function's
    input require grad keeps eager's gradients (the call runs eagerly)."""
    a = tj.randn(2, 3, device="cuda")
    assert tuple(a.view(3, 2).shape) == (3, 2) and tuple(a.view(-1).shape) == (6,)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        a.t().view(-1)
    c = tj.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device="cuda", requires_grad=True)
    s = tj.tensor(2.0, requires_grad=True)
    (c * s).sum().backward()
    assert s.grad.device.type == "cpu" and s.grad.item() == 21.0
    tj.optim.SGD([s], lr=0.1).step()
    assert s.item() == pytest.approx(-0.1, rel=1e-5)       # 2 - 0.1 * 21 in float32
    with pytest.raises(RuntimeError, match="same device"):
        tj.tensor(2.0).add_(tj.tensor(3.0, device="cuda"))

    def f(x, k):
        x.mul_(k)
        return x
    cf = tj.compile(f)
    for _ in range(2):
        x = tj.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device="cuda")
        k = tj.tensor(3.0, device="cuda", requires_grad=True)
        w = tj.tensor(2.0, device="cuda", requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (cf(x, k) * w).sum().backward()
        assert x.requires_grad and k.grad.item() == 42.0 and w.grad.item() == 63.0
