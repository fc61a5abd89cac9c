"""Tests for the kernel thread pool (parallel_for)."""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tracejit.codegen import threadpool
from tracejit.codegen.llvm import engine

REPO = Path(__file__).resolve().parents[1]

AXPY_IR = r"""
define void @axpy(i64 %start, i64 %stop, float* noalias %x, float* noalias %y,
                  float* noalias %out) {
entry:
  %nonempty = icmp slt i64 %start, %stop
  br i1 %nonempty, label %loop, label %exit
loop:
  %i = phi i64 [ %start, %entry ], [ %next, %loop ]
  %px = getelementptr inbounds float, float* %x, i64 %i
  %py = getelementptr inbounds float, float* %y, i64 %i
  %po = getelementptr inbounds float, float* %out, i64 %i
  %vx = load float, float* %px
  %vy = load float, float* %py
  %ax = fmul float %vx, 3.0
  %s = fadd float %ax, %vy
  store float %s, float* %po
  %next = add nsw i64 %i, 1
  %more = icmp slt i64 %next, %stop
  br i1 %more, label %loop, label %exit
exit:
  ret void
}
"""

KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64)


@pytest.fixture(scope="module")
def axpy(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # keep test objects out of the user's cache
        mp.setenv("TRACEJIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return KERNEL(engine.compile_ir(AXPY_IR, ["axpy"])["axpy"])


@pytest.fixture
def threads(monkeypatch):
    def set_threads(n: int) -> None:
        monkeypatch.setenv("TRACEJIT_NUM_THREADS", str(n))

    return set_threads


def arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32),
            np.zeros(n, np.float32))


def pointers(*arrs: np.ndarray) -> tuple[int, ...]:
    return tuple(a.ctypes.data for a in arrs)


def record_chunks(total: int, grain: int) -> list[tuple[int, int, int]]:
    """Run parallel_for with a recording ctypes callback; returns (start, stop, thread id)."""
    seen: list[tuple[int, int, int]] = []
    cb = CALLBACK(lambda start, stop: seen.append((start, stop, threading.get_ident())))
    threadpool.parallel_for(cb, total, (), grain)
    return seen


def test_num_threads_env(threads):
    threads(3)
    assert threadpool.num_threads() == 3
    threads(0)
    assert threadpool.num_threads() == 1


def test_llvm_kernel_matches_inline(axpy, threads):
    n = (1 << 20) + 7
    x, y, out = arrays(n)
    threads(4)
    threadpool.parallel_for(axpy, n, pointers(x, y, out), 1024)
    expected = np.zeros_like(out)
    axpy(0, n, *pointers(x, y, expected))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, 3 * x + y, rtol=1e-6)


@pytest.mark.parametrize("total", [1, 2, 3, 5, 7, 13, 1001, 4097])
@pytest.mark.parametrize("grain", [1, 3])
def test_chunks_cover_range_exactly_once(threads, total, grain):
    threads(8)
    chunks = sorted(record_chunks(total, grain))
    bounds = [(start, stop) for start, stop, _ in chunks]
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, no overlap
    assert len(chunks) <= max(1, min(8, total // grain))
    if len(chunks) > 1:
        assert all(stop - start >= grain for start, stop in bounds)


def test_one_thread_runs_inline(threads):
    threads(1)
    assert record_chunks(10_000, 1) == [(0, 10_000, threading.get_ident())]


def test_small_work_runs_inline(threads):
    threads(8)
    assert record_chunks(100, 64) == [(0, 100, threading.get_ident())]


def test_zero_total_does_nothing(threads):
    threads(8)
    assert record_chunks(0, 1) == []


def test_pool_is_persistent(threads):
    threads(4)
    for _ in range(20):
        record_chunks(1000, 1)
    workers = [t for t in threading.enumerate() if t.name.startswith("tracejit-worker-")]
    assert len(workers) >= 3
    assert all(t.daemon for t in workers)
    for _ in range(20):
        record_chunks(1000, 1)
    again = [t for t in threading.enumerate() if t.name.startswith("tracejit-worker-")]
    assert set(again) == set(workers)


def test_exception_is_reraised(threads):
    threads(4)

    def fn(start: int, stop: int) -> None:
        if start > 0:
            raise ValueError(f"chunk {start}")

    with pytest.raises(ValueError, match="chunk"):
        threadpool.parallel_for(fn, 100, (), 1)
    assert len(record_chunks(100, 1)) == 4  # the pool still works afterwards


def test_nested_call_does_not_deadlock(threads):
    threads(4)
    inner: list[tuple[int, int]] = []

    def outer(start: int, stop: int) -> None:
        threadpool.parallel_for(lambda a, b: inner.append((a + start, b + start)),
                                stop - start, (), 1)

    threadpool.parallel_for(outer, 400, (), 1)
    covered = np.zeros(400, int)
    for a, b in inner:
        covered[a:b] += 1
    assert (covered == 1).all()


def test_concurrent_callers(axpy, threads):
    threads(4)
    n = 200_003
    errors: list[BaseException] = []

    def caller(seed: int) -> None:
        try:
            x, y, out = arrays(n, seed)
            for _ in range(20):
                out[:] = 0
                threadpool.parallel_for(axpy, n, pointers(x, y, out), 4096)
                np.testing.assert_allclose(out, 3 * x + y, rtol=1e-6)
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    ts = [threading.Thread(target=caller, args=(seed,)) for seed in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors[0]


def test_interpreter_exit_does_not_hang():
    code = (
        "import ctypes\n"
        "from tracejit.codegen import threadpool\n"
        "cb = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64)(lambda a, b: None)\n"
        "for _ in range(100):\n"
        "    threadpool.parallel_for(cb, 1000, (), 1)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TRACEJIT_NUM_THREADS="4",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
