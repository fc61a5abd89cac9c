"""Tests for the LLVM compile/load engine and its on-disk object cache."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tracejit.codegen.llvm import engine

REPO = Path(__file__).resolve().parents[1]

ADD_IR = r"""
define void @add(i64 %start, i64 %stop, float* noalias %a, float* noalias %b,
                 float* noalias %c) {
entry:
  %nonempty = icmp slt i64 %start, %stop
  br i1 %nonempty, label %loop, label %exit
loop:
  %i = phi i64 [ %start, %entry ], [ %next, %loop ]
  %pa = getelementptr inbounds float, float* %a, i64 %i
  %pb = getelementptr inbounds float, float* %b, i64 %i
  %pc = getelementptr inbounds float, float* %c, i64 %i
  %va = load float, float* %pa
  %vb = load float, float* %pb
  %s = fadd float %va, %vb
  store float %s, float* %pc
  %next = add nsw i64 %i, 1
  %more = icmp slt i64 %next, %stop
  br i1 %more, label %loop, label %exit
exit:
  ret void
}
"""

KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

# Run in a fresh interpreter: compile ADD_IR (read from argv[1]), check it, print the stats.
CHILD = """
import ctypes, json, sys
import numpy as np
from tracejit.codegen.llvm import engine
ir = open(sys.argv[1]).read()
addr = engine.compile_ir(ir, ["add"])["add"]
fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64,
                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(addr)
a = np.arange(1000, dtype=np.float32); b = np.full(1000, 2.0, np.float32); c = np.zeros_like(a)
fn(0, 1000, a.ctypes.data, b.ctypes.data, c.ctypes.data)
assert np.array_equal(c, a + b)
print(json.dumps(engine.cache_stats()))
"""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test gets its own empty cache dir and an empty memory cache."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(directory))
    engine._clear_memory_cache()
    yield directory
    engine._clear_memory_cache()


def run_add(addr: int, n: int = 1003) -> None:
    a = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    b = np.arange(n, dtype=np.float32)
    c = np.zeros(n, np.float32)
    KERNEL(addr)(0, n, a.ctypes.data, b.ctypes.data, c.ctypes.data)
    np.testing.assert_array_equal(c, a + b)


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in before}


def run_child(cache_dir: Path, ir_file: Path) -> subprocess.Popen:
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(ir_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child_stats(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def test_compile_and_call():
    addrs = engine.compile_ir(ADD_IR, ["add"])
    assert set(addrs) == {"add"} and addrs["add"] > 0
    run_add(addrs["add"])
    run_add(addrs["add"], n=5)  # shorter than one vector: the scalar remainder loop


def test_missing_function_name():
    with pytest.raises(KeyError):
        engine.compile_ir(ADD_IR, ["nope"])


def test_optimized_ir_is_vectorised():
    text = engine.optimized_ir(ADD_IR)
    assert any(f"<{w} x float>" in text for w in (4, 8, 16)), text


def test_memory_cache_hit():
    first = engine.compile_ir(ADD_IR, ["add"])
    before = engine.cache_stats()
    second = engine.compile_ir(ADD_IR, ["add"])
    assert second == first
    assert delta(before, engine.cache_stats()) == {
        "memory_hits": 1, "disk_hits": 0, "compiles": 0, "corrupt_entries_rebuilt": 0}


def test_disk_hit_in_new_process(cache, tmp_path):
    ir_file = tmp_path / "add.ll"
    ir_file.write_text(ADD_IR)
    cold = child_stats(run_child(cache, ir_file))
    assert cold["compiles"] == 1 and cold["disk_hits"] == 0
    warm = child_stats(run_child(cache, ir_file))
    assert warm["disk_hits"] == 1 and warm["compiles"] == 0


def test_cache_dir_created_private(cache):
    assert not cache.exists()
    engine.compile_ir(ADD_IR, ["add"])
    assert engine.cache_dir() == cache
    assert cache.stat().st_mode & 0o777 == 0o700
    files = entries(cache)
    assert len(files) == 1 and files[0].suffix == ".o"


@pytest.mark.parametrize("damage", ["flip_payload", "flip_header", "truncate", "empty"])
def test_corrupt_entry_is_rebuilt(cache, damage):
    engine.compile_ir(ADD_IR, ["add"])
    (entry,) = entries(cache)
    data = bytearray(entry.read_bytes())
    if damage == "flip_payload":
        data[-10] ^= 0xFF
    elif damage == "flip_header":
        data[3] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))

    engine._clear_memory_cache()
    before = engine.cache_stats()
    run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
    assert delta(before, engine.cache_stats()) == {
        "memory_hits": 0, "disk_hits": 0, "compiles": 1, "corrupt_entries_rebuilt": 1}

    # The rewritten entry is valid again.
    engine._clear_memory_cache()
    before = engine.cache_stats()
    run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
    assert delta(before, engine.cache_stats())["disk_hits"] == 1


def test_concurrent_writers_leave_one_valid_entry(cache, tmp_path):
    ir_file = tmp_path / "add.ll"
    ir_file.write_text(ADD_IR)
    procs = [run_child(cache, ir_file) for _ in range(4)]
    for proc in procs:
        child_stats(proc)
    files = entries(cache)
    assert len(files) == 1 and files[0].suffix == ".o", files  # no stray temporary files
    before = engine.cache_stats()
    run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
    assert delta(before, engine.cache_stats())["disk_hits"] == 1


def test_concurrent_threads():
    variants = [ADD_IR.replace("@add", f"@add{i}") for i in range(3)]
    results: list[tuple[int, int]] = []

    def work(i: int) -> None:
        for _ in range(3):
            results.append((i, engine.compile_ir(variants[i], [f"add{i}"])[f"add{i}"]))

    threads = [threading.Thread(target=work, args=(i % 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 18
    by_variant: dict[int, set[int]] = {}
    for i, addr in results:
        by_variant.setdefault(i, set()).add(addr)
    assert all(len(addrs) == 1 for addrs in by_variant.values())
    for addrs in by_variant.values():
        run_add(next(iter(addrs)))


def test_uncreatable_cache_dir_falls_back(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="tracejit.code"):
        run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
        engine._clear_memory_cache()
        run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_unwritable_cache_dir_falls_back(cache, monkeypatch, caplog):
    cache.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root ignores the mode bits: make the write fail another way
        def refuse(*args, **kwargs):
            raise PermissionError("read-only")

        monkeypatch.setattr(engine.tempfile, "mkstemp", refuse)
    try:
        with caplog.at_level(logging.WARNING, logger="tracejit.code"):
            for _ in range(2):
                engine._clear_memory_cache()
                run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
        assert entries(cache) == []
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        cache.chmod(0o700)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_cache_dir_of_another_user_is_not_used(cache, caplog):
    cache.mkdir(mode=0o777)
    os.chown(cache, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="tracejit.code"):
        run_add(engine.compile_ir(ADD_IR, ["add"])["add"])
    assert entries(cache) == []
    assert any("another user" in r.getMessage() for r in caplog.records)
