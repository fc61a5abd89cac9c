"""The examples run end to end as scripts (at reduced size, each a few seconds) and print their
progress; train_mlp on Iris reaches its stated accuracy at full size (it takes ~2 s)."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(EXAMPLES.parent),
                          check=False)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_seed_walkthrough():
    out = run("seed_walkthrough.py", "--quick")
    # the three mistakes of the usual tutorial, each answered with PyTorch's exception
    assert "out.backward() -> RuntimeError: grad can be implicitly created only for scalar" in out
    assert "square.weight.grad -> AttributeError" in out
    assert "SGD(Square().parameters()) -> ValueError: optimizer got an empty parameter list" \
        in out
    assert "x.grad after out.sum().backward(): tensor([2., 4., 6.])" in out
    assert re.search(r"epoch +20 +loss", out)


def test_seed_walkthrough_full_size_learns_w():
    out = run("seed_walkthrough.py")
    w = float(re.search(r"learned w = ([\d.]+)", out).group(1))
    assert abs(w - 3.0) < 1e-2


def test_train_mlp_iris_reaches_stated_accuracy():
    out = run("train_mlp.py")
    acc = float(re.search(r"test accuracy ([\d.]+) \(meets the stated 90%\)", out).group(1))
    assert acc >= 0.9
    assert "epoch   60" in out
    assert "checkpoint" in out and f"reloaded: test accuracy {acc:.3f}" in out


@pytest.mark.parametrize("dataset", ["iris", "spiral"])
def test_train_mlp_quick(dataset):
    out = run("train_mlp.py", "--quick", "--dataset", dataset)
    assert re.search(r"epoch +15 +loss [\d.]+ +train acc", out)
    assert "reloaded: test accuracy" in out


def test_train_mlp_with_the_whole_step_compiled_trains_as_eager(monkeypatch):
    """Adam and a cosine LR schedule inside one compiled training step (two batch shapes):
    the same losses as the eager loop, epoch by epoch, with no graph break (a warning)."""
    monkeypatch.setenv("PYTHONWARNINGS", "error::RuntimeWarning")

    def losses(*extra):
        out = run("train_mlp.py", "--quick", "--dataset", "spiral", *extra)
        return re.findall(r"epoch +\d+ +loss ([\d.]+)", out)
    eager = losses()
    assert len(eager) >= 3 and losses("--compile") == eager


def test_char_rnn_quick_prints_progress_and_a_sample():
    out = run("char_rnn.py", "--quick", "--steps", "12")
    losses = [float(v) for v in re.findall(r"loss ([\d.]+) +\(smoothed", out)]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    sample = out.split("sample (temperature 0.8):\n\n", 1)[1]
    assert sample.startswith("Shall I ") and len(sample.strip()) >= 40
