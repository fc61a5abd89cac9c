"""Train an MLP classifier on a small real dataset (Iris) or a generated one (spirals).

- iris (default): Fisher's Iris data, 150 flowers x 4 measurements, 3 species, shipped in
  examples/data/iris.csv (source and licence in examples/data/README.md). A stratified,
  seeded split keeps 30 flowers for testing; the model reaches >= 90% test accuracy on it.
  With 30 test flowers one error is 3.3%, and the split matters more than the training run:
  over six seeded splits the same model scored between 87% and 100%.
- spiral: three interleaved spirals (the classic CS231n toy problem), 900 points generated
  deterministically; not linearly separable, so the hidden layers matter. Reaches >= 95% on
  the 300 held-out points.

It also shows the checkpoint round trip: the trained model and optimizer are saved with tj.save,
loaded into fresh objects with tj.load, and give the same test accuracy.

Run: python examples/train_mlp.py [--dataset iris|spiral] [--quick]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The matrices here are small: BLAS worker threads cost more than they save, and on a busy
# machine they spin and slow every matmul down many times over. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

import tracejit as tj
from tracejit import nn

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def load_iris(seed: int = 0):
    """(x_train, y_train, x_test, y_test, class names), 10 test flowers per species."""
    rows = np.genfromtxt(os.path.join(DATA, "iris.csv"), delimiter=",", dtype=str,
                         skip_header=1)
    names = sorted(set(rows[:, 4]))
    x = rows[:, :4].astype(np.float32)
    y = np.array([names.index(s) for s in rows[:, 4]], dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:10] for c in range(3)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return x[train], y[train], x[test], y[test], names


def make_spirals(n_per_class: int = 300, seed: int = 0):
    """Three noisy spiral arms in 2-D; every third point goes to the test set."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        ys.append(np.full(n_per_class, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    test = np.arange(len(y)) % 3 == 0
    return x[~test], y[~test], x[test], y[test], ["arm 0", "arm 1", "arm 2"]


def make_model(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


def accuracy(model: nn.Module, x: tj.Tensor, y: tj.Tensor) -> float:
    model.eval()
    with tj.no_grad():
        pred = model(x).argmax(1)
    model.train()
    return (pred == y).sum().item() / len(y)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("iris", "spiral"), default="iris")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a few epochs only (tests)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the whole training step (forward, backward, Adam step)")
    args = parser.parse_args(argv)
    tj.manual_seed(0)
    if args.dataset == "iris":
        xtr, ytr, xte, yte, names = load_iris()
        hidden, epochs, target, lr = 16, 60, 0.90, 0.01
    else:
        xtr, ytr, xte, yte, names = make_spirals()
        hidden, epochs, target, lr = 64, 100, 0.95, 0.01
    if args.epochs:
        epochs = args.epochs
    elif args.quick:
        epochs = 15
    # standardise with the training set's statistics (the test set must not leak in)
    mean, std = xtr.mean(0), xtr.std(0)
    x_train, x_test = tj.tensor((xtr - mean) / std), tj.tensor((xte - mean) / std)
    y_train, y_test = tj.tensor(ytr), tj.tensor(yte)
    print(f"{args.dataset}: {len(ytr)} train / {len(yte)} test samples, {len(names)} classes, "
          f"{xtr.shape[1]} features")

    model = make_model(xtr.shape[1], hidden, len(names))
    print(model)
    loss_fn = nn.CrossEntropyLoss()
    opt = tj.optim.Adam(model.parameters(), lr=lr)
    sched = tj.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr / 20)
    batch = 16 if args.dataset == "iris" else 64
    n = len(ytr)

    def train_step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    if args.compile:   # one graph per batch shape; the scheduler's lr is read on every call
        train_step = tj.compile(train_step)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        perm = tj.randperm(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss = train_step(x_train[idx], y_train[idx])
            total += loss.item() * len(idx)
        sched.step()
        if epoch == 1 or epoch % max(1, epochs // 10) == 0 or epoch == epochs:
            print(f"epoch {epoch:4d}  loss {total / n:.4f}  "
                  f"train acc {accuracy(model, x_train, y_train):.3f}  "
                  f"test acc {accuracy(model, x_test, y_test):.3f}  "
                  f"lr {sched.get_last_lr()[0]:.5f}  {time.perf_counter() - t0:.1f}s")
    test_acc = accuracy(model, x_test, y_test)
    ok = test_acc >= target
    print(f"test accuracy {test_acc:.3f} ({'meets' if ok else 'BELOW'} the stated "
          f"{target:.0%}) after {epochs} epochs, {time.perf_counter() - t0:.1f} s")

    # checkpoint round trip: a fresh model and optimizer resume from the file
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mlp.tj")
        tj.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epochs,
                 "mean": tj.tensor(mean), "std": tj.tensor(std)}, path)
        ckpt = tj.load(path)
        size = os.path.getsize(path)
    restored = make_model(xtr.shape[1], hidden, len(names))
    restored.load_state_dict(ckpt["model"])
    opt2 = tj.optim.Adam(restored.parameters(), lr=lr)
    opt2.load_state_dict(ckpt["optimizer"])
    restored_acc = accuracy(restored, x_test, y_test)
    print(f"checkpoint ({size} bytes) reloaded: test accuracy {restored_acc:.3f}")
    return {"test_acc": test_acc, "restored_acc": restored_acc, "target": target,
            "epochs": epochs, "seconds": time.perf_counter() - t0,
            "loss": total / n if not math.isnan(total) else total}


if __name__ == "__main__":
    main()
