"""A first walk through tracejit: eager tensors, dynamic graphs, autograd and a training loop.

This is the classic introduction (create and add tensors; a Module computing x ** 2 and its
gradient; a training loop with MSELoss and SGD) written so that it actually runs. The usual
tutorial version of it contains three mistakes; each is marked "USUAL TUTORIAL" below, with what
tracejit answers (the same exception PyTorch raises) and the correct code.

Run: python examples/seed_walkthrough.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The matrices here are small: BLAS worker threads cost more than they save, and on a busy
# machine they spin and slow every matmul down many times over. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import tracejit as tj
from tracejit import nn


def show(title: str) -> None:
    print(f"\n=== {title} ===")


class Square(nn.Module):
    """y = x ** 2: a module with a forward but no parameters."""

    def forward(self, x: tj.Tensor) -> tj.Tensor:
        return x ** 2


class ScaledSquare(nn.Module):
    """y = w * x ** 2 with a learnable scalar w: something an optimizer can train."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(tj.tensor([0.5]))

    def forward(self, x: tj.Tensor) -> tj.Tensor:
        return self.weight * x ** 2


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer training epochs (tests)")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    epochs = args.epochs or (20 if args.quick else 200)
    tj.manual_seed(0)

    show("1. tensors are created and combined eagerly")
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tj.tensor([4.0, 5.0, 6.0])
    z = x + y                       # computed now: the values are there to print
    print("x + y =", z)
    print("shape", tuple(z.shape), "dtype", z.dtype)

    show("2. the graph is recorded as the code runs (dynamic graph)")
    print("z.grad_fn =", z.grad_fn, "(x requires grad, so z remembers how it was made)")
    w = z * 2 if z.sum().item() > 0 else z * -2   # ordinary Python control flow
    print("w =", w)

    show("3. a Module computing x ** 2, and its gradient")
    square = Square()
    out = square(x)
    print("square(x) =", out)
    # USUAL TUTORIAL: `out.backward()`. out has 3 elements, and a gradient can only be created
    # implicitly for a scalar. tracejit raises RuntimeError, as PyTorch does:
    try:
        out.backward()
    except RuntimeError as e:
        print("out.backward() ->", type(e).__name__ + ":", e)
    # Correct: reduce to a scalar first (or pass gradient=tj.ones_like(out)).
    out.sum().backward()
    print("x.grad after out.sum().backward():", x.grad, "(= 2 * x)")

    # USUAL TUTORIAL: `print(square.weight.grad)`. Square has no parameters, so there is no
    # .weight to read; tracejit raises AttributeError, as PyTorch does:
    try:
        print(square.weight.grad)
    except AttributeError as e:
        print("square.weight.grad ->", type(e).__name__ + ":", e)
    # Correct: the gradient of this computation lives on the input, x.grad (above); a module's
    # own learnable tensors are listed by parameters():
    print("list(square.parameters()) =", list(square.parameters()))

    show("4. a training loop with MSELoss and SGD")
    # USUAL TUTORIAL: `tj.optim.SGD(Square().parameters(), lr=0.01)`. The model has nothing to
    # optimise; tracejit raises ValueError, as PyTorch does:
    try:
        tj.optim.SGD(square.parameters(), lr=0.01)
    except ValueError as e:
        print("SGD(Square().parameters()) ->", type(e).__name__ + ":", e)
    # Correct: train a model that has a parameter. Fit y = 3 x^2 with y_hat = w * x^2.
    model = ScaledSquare()
    loss_fn = nn.MSELoss()
    opt = tj.optim.SGD(model.parameters(), lr=0.02)
    xs = tj.linspace(-1.5, 1.5, 16)
    ys = 3.0 * xs ** 2
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        opt.zero_grad()                 # gradients accumulate unless cleared
        loss = loss_fn(model(xs), ys)   # a scalar, so backward() needs no argument
        loss.backward()
        opt.step()
        if epoch == 1 or epoch % max(1, epochs // 10) == 0:
            print(f"epoch {epoch:4d}  loss {loss.item():.6f}  w {model.weight.item():.4f}")
    final_w = model.weight.item()
    print(f"learned w = {final_w:.4f} (target 3.0) in {time.perf_counter() - t0:.2f} s")
    return {"w": final_w, "loss": loss.item(), "x_grad": x.grad.tolist()}


if __name__ == "__main__":
    main()
