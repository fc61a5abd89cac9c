"""perf/ and tracejit.utils.benchmark end to end, at tiny sizes. Timings are never asserted:
only that the harness runs, reports what it should, and refuses to time a wrong result."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj
from perf import harness, peers, report
from perf.__main__ import main
from tracejit.utils import benchmark as B


def _fake_compile(wrong: str | None = None):
    """A stand-in for tj.compile that runs eagerly: right, or with a wrong loss or gradient."""
    def compile(fn, backend=None, fullgraph=False):
        def cf(*args, **kwargs):
            out = fn(*args, **kwargs)
            if wrong == "loss":
                out = out * 1.01 + 0.5
            elif wrong == "grad":
                x = next(a for a in args if tj.is_tensor(a) and a.requires_grad)
                nudge = (x * 0.05).sum()
                out = out + nudge - nudge.detach()  # same value, gradient of x off by 0.05
            cf.last_stats = {"kernels_forward": 1, "kernels_backward": 2, "compile_s": 0.0}
            return out
        cf.last_stats = {}
        return cf
    return compile


def _run(ids, monkeypatch=None, compile=None, peer_list=()):
    if compile is not None:
        monkeypatch.setattr(tj, "compile", compile, raising=False)
    return harness.run(ids, "tiny", "llvm", list(peer_list), progress=False)


def test_cli_end_to_end_json(tmp_path, capsys):
    path = tmp_path / "results.json"
    rc = main(["--tiny", "--workloads", "W1,W5,W6", "--no-peers", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert rc == (1 if data["mismatches"] else 0)
    assert [r["id"] for r in data["rows"]] == ["W1", "W5"]
    assert data["floors"]["bandwidth_GBps"] > 0 and data["floors"]["blas_GFLOPs"] > 0
    assert data["machine"]["numpy"] == np.__version__ and data["machine"]["cores"] >= 1
    for row in data["rows"]:
        t = row["tracejit"]
        assert t["eager"]["median_s"] > 0
        assert t["status"] in ("ok", "mismatch", "n/a", "error")
        if t["status"] == "ok":
            assert t["compiled"]["median_s"] > 0 and t["speedup"] > 0
        else:  # no time of any kind for a result that is wrong or missing
            assert t["compiled"] is None and t["first_call_s"] is None and t["message"]
    assert row["floor_s"] is None and data["rows"][0]["eager_x_floor"] > 0
    if hasattr(tj, "compile"):
        assert [lat["source"] for lat in data["compile_latency"]] == ["W1"]
        assert data["compile_latency"][0]["cold_s"] > 0  # W6: a new process, cold cache
    assert "W1" in out and "floors: memory" in out and "wall time" in out


def test_every_workload_through_the_compiled_path(monkeypatch):
    rep = _run(["W1", "W2", "W3", "W4", "W5", "W7"], monkeypatch, _fake_compile())
    # W2 twice: optimizer eager, and the whole training step compiled
    assert [r.wl.id for r in rep.rows] == ["W1", "W2", "W2", "W3", "W4", "W5", "W7"]
    assert rep.rows[2].wl.size.endswith("whole step")
    for row in rep.rows:
        r = row.result
        assert r.status == "ok", (row.wl.id, r.message)
        assert r.compiled.median > 0 and r.speedup > 0 and r.first_call_s > 0
        assert r.kernels == "1+2"
        assert (row.floor_s is None) == (row.wl.id == "W5")
    text = report.render(rep)
    assert "1+2" in text and "MISMATCH" not in text


@pytest.mark.parametrize("wrong", ["loss", "grad"])
def test_wrong_compiled_result_is_a_mismatch_without_time(monkeypatch, wrong):
    rep = _run(["W1", "W3"], monkeypatch, _fake_compile(wrong))
    for row in rep.rows:
        r = row.result
        assert r.status == "mismatch" and r.message.startswith("MISMATCH (max err")
        assert r.message.endswith("in loss)" if wrong == "loss" else "in grad x)")
        assert r.compiled is None and r.first_call_s is None and r.speedup is None
        assert r.eager is not None  # eager is the reference: it keeps its time
    text, md = report.render(rep), report.render(rep, markdown=True)
    for out in (text, md):
        assert out.count("MISMATCH (max err") == 2
    js = report.to_json(rep)
    assert js["mismatches"] == ["W1", "W3"]
    assert all(r["tracejit"]["compiled"] is None for r in js["rows"])


def test_cli_exit_code_on_mismatch(monkeypatch, capsys):
    monkeypatch.setattr(tj, "compile", _fake_compile("loss"), raising=False)
    assert main(["--tiny", "--workloads", "W5", "--no-peers"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_compiler_missing_reports_na(monkeypatch):
    monkeypatch.delattr(tj, "compile", raising=False)
    rep = _run(["W5", "W6"])
    r = rep.rows[0].result
    assert r.status == "n/a" and r.message == "n/a (not available)" and r.compiled is None
    assert any("W6 skipped" in n for n in rep.notes)


def test_markdown(capsys):
    assert main(["--tiny", "--workloads", "W5", "--no-peers", "--markdown"]) in (0, 1)
    out = capsys.readouterr().out
    assert "| W | workload | size | floor | eager | compiled | speedup | first call | kernels | " \
        "check |" in out and "|---|" in out and "| W5 | call_overhead |" in out


def test_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(tj, "compile", _fake_compile(), raising=False)
    path = tmp_path / "speedups.png"
    assert main(["--tiny", "--workloads", "W1,W5", "--no-peers", "--plot", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_says_so(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(SystemExit) as exc:
        main(["--tiny", "--workloads", "W5", "--plot", "x.png"])
    assert exc.value.code == 2
    assert "pip install matplotlib" in capsys.readouterr().err


def test_bad_workload_id(capsys):
    with pytest.raises(SystemExit):
        main(["--workloads", "W1,W9"])
    assert "W9" in capsys.readouterr().err


def test_absent_peers_are_a_note(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "jax") else real(name, *a))
    found, notes = peers.available()
    assert found == [] and len(notes) == 2 and all("skipped" in n for n in notes)


def test_installed_peers_get_checked_columns(monkeypatch):
    found, _ = peers.available(quick=True)
    if not found:
        pytest.skip("neither torch nor jax is installed")
    rep = _run(["W1", "W5"], monkeypatch, _fake_compile(), found)
    for row in rep.rows:
        for p in found:
            cell = row.peers[p]
            assert cell["status"] == "ok", (row.wl.id, p, cell["message"])
            assert cell["timing"].median > 0
    assert all(p in report.render(rep) for p in found)


def test_compare_helper(capsys):
    x = tj.randn(64, requires_grad=True)
    w = tj.randn(64, requires_grad=True)

    def f(x, w):
        return (x * w).tanh().sum()

    good = B.compare(f, x, w, compiler=lambda fn: fn, max_reps=3, target_s=0.01)
    out = capsys.readouterr().out
    assert good.status == "ok" and good.speedup > 0
    assert out.splitlines()[0].split() == ["eager", "compiled", "speedup", "first", "call",
                                           "kernels", "check"]
    bad = B.compare(f, x, w, compiler=lambda fn: (lambda *a: fn(*a) * 2), max_reps=3,
                    target_s=0.01)
    assert bad.status == "mismatch" and bad.compiled is None and bad.first_call_s is None
    assert "MISMATCH (max err" in capsys.readouterr().out
    # a non-scalar output is summed for backward; no grad at all compares outputs only
    y = B.compare(lambda x: x * 3, x, compiler=lambda fn: fn, max_reps=2, verbose=False)
    z = B.compare(lambda a: a + 1, tj.randn(4), backward=False, compiler=lambda fn: fn,
                  max_reps=2, verbose=False)
    assert y.status == z.status == "ok"


def test_compare_with_tj_compile():
    if not hasattr(tj, "compile"):
        pytest.skip("tj.compile not written yet")
    x = tj.randn(32, requires_grad=True)
    r = B.compare(lambda x: (x * 2 + 1).relu().sum(), x, backend="interpret", max_reps=2,
                  verbose=False)
    assert r.status in ("ok", "mismatch", "error") and r.backend == "interpret"


def test_check_close():
    a = np.array([1.0, np.nan, np.inf, 0.0], np.float32)
    assert B.check_close([a], [a.copy()], ["x"])[0]
    assert B.check_close([a], [a + np.float32(1e-6)], ["x"])[0]
    assert not B.check_close([a], [a * 1.01], ["x"])[0]
    assert B.check_close([a], [np.array([1, 0, np.inf, 0], np.float32)], ["x"])[2] == \
        "x (NaN/inf differ)"
    assert not B.check_close([a], [a[:2]], ["x"])[0]
    assert not B.check_close([a, None], [a, a], ["x", "g"])[0]


def test_formatting():
    assert B.fmt_time(1.234e-3) == "1.23 ms" and B.fmt_time(None) == "-"
    assert B.fmt_time(812e-9) == "812 ns" and B.fmt_time(2.5) == "2.5 s"
    assert B.fmt_timing(B.Timing(1.2e-3, 1.1e-3, 1.35e-3, 5)) == "1.2 ms (1.10-1.35)"
    assert B.kernels_text({"kernels_forward": 1, "kernels_backward": 1}) == "1+1"
    assert B.kernels_text({}) == "-" and B.kernels_text(None) == "-"


def test_cuda_backend_under_the_simulator(tmp_path):
    """--backend cuda puts the tensors on the GPU (here Numba's CUDA simulator, in a subprocess
    so that the variable is set before numba loads) and measures the GPU's own floor."""
    if importlib.util.find_spec("numba") is None:
        pytest.skip("numba not installed")
    path = tmp_path / "cuda.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "perf", "--tiny", "--backend", "cuda",
                           "--workloads", "W1", "--json", str(path)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data = json.loads(path.read_text())
    assert "simulator" in data["floors"]["bandwidth_how"] and data["floors"]["blas_GFLOPs"] is None
    assert data["peers"] == []  # CPU peers against GPU workloads would compare nothing
    row = data["rows"][0]["tracejit"]
    assert row["status"] != "ok" or row["backend"] == "cuda"


def test_a_failure_is_a_cell_not_a_crash(monkeypatch):
    """An exception in eager, in the compiled first call or while timing ends up in the row."""
    from perf.workloads import Workload

    calls = [0]

    def flaky(x):
        calls[0] += 1
        if calls[0] > 3:  # the reference and first calls pass, then the device "fails"
            raise IndexError("index out of range\nfound at the next synchronisation")
        return (x * 2).sum()

    def broken(x):
        raise ValueError("eager is broken")

    def case_of(fn):
        return B.Case(fn, (tj.randn(8, requires_grad=True),))
    wls = [Workload("W1", "flaky", "8", case_of(flaky), None, 0.0, "x"),
           Workload("W3", "broken", "8", case_of(broken), None, 0.0, "x")]
    monkeypatch.setattr(tj, "compile", _fake_compile(), raising=False)
    rep = harness.run([], "tiny", "llvm", [], progress=False, workloads=wls)
    flaky_row, broken_row = (r.result for r in rep.rows)
    assert flaky_row.status == "error" and "while timing" in flaky_row.message
    assert flaky_row.eager is None and flaky_row.compiled is None
    assert broken_row.status == "error" and broken_row.message == "error in eager: ValueError"
    text = report.render(rep)
    assert "index out of range found at the next" in text and "eager is broken" in text
