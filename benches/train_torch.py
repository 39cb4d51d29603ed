#!/usr/bin/env python3
"""Reference for the `train` throughput: the same `timecnn` (or `tempcnn`) in PyTorch on the CPU,
same synthetic task as `nodes/examples/bench_train.rs` (6 seasons x 30 features, 14 classes,
20,000 samples, 80/20 split, batch 256, Adam lr 1e-3, cross-entropy), same measure: training
samples per second of wall time over all epochs, a validation pass per epoch included, and per
second of the process's CPU time (time.process_time: all its threads), the fairer number when
other work shares the cores.

The samples are drawn with numpy, not bit-identical to the Rust side's (throughput does not
depend on the values).

    pip install torch numpy
    python3 benches/train_torch.py [--epochs 3] [--samples 20000] [--arch timecnn] [--threads N]
"""

import argparse
import threading
import time

import numpy as np
import torch
from torch import nn

SEASONS, FEATURES, CLASSES = 6, 30, 14


class TimeCnn(nn.Module):
    def __init__(self, s, f, c, dropout=0.5):
        super().__init__()
        self.s, self.f = s, f
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * s * f, 256), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(256, c),
        )

    def forward(self, x):
        return self.head(self.conv(x.view(-1, 1, self.s, self.f)))


class TempCnn(nn.Module):
    def __init__(self, s, f, c, dropout=0.5):
        super().__init__()
        self.s, self.f = s, f
        layers = []
        cin = f
        for _ in range(3):
            layers += [nn.Conv1d(cin, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2)]
            cin = 64
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * s, 256), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(256, c),
        )

    def forward(self, x):
        return self.head(self.conv(x.view(-1, self.s, self.f).transpose(1, 2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--arch", default="timecnn", choices=["timecnn", "tempcnn"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--thread", default="spawned", choices=["spawned", "main"],
                    help="train on a thread of its own (as bench_train and `lulc run` do) or on "
                         "the main thread")
    a = ap.parse_args()
    if a.thread == "main":
        run(a)
    else:
        t = threading.Thread(target=run, args=(a,))
        t.start()
        t.join()


def run(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    rng = np.random.default_rng(42)
    w = SEASONS * FEATURES
    centres = rng.standard_normal((CLASSES, w)).astype(np.float32)
    y = np.arange(a.samples) % CLASSES
    x = centres[y] + 2.0 * rng.standard_normal((a.samples, w)).astype(np.float32)
    perm = rng.permutation(a.samples)
    n_val = a.samples // 5
    val, tr = perm[:n_val], perm[n_val:]
    mean = x[tr].reshape(-1, FEATURES).mean(0)
    sd = x[tr].reshape(-1, FEATURES).std(0)
    x = ((x.reshape(-1, FEATURES) - mean) / sd).reshape(a.samples, w).astype(np.float32)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr]).long()
    xv, yv = torch.from_numpy(x[val]), torch.from_numpy(y[val]).long()

    net = (TimeCnn if a.arch == "timecnn" else TempCnn)(SEASONS, FEATURES, CLASSES)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    bs = 256
    t0 = time.perf_counter()
    c0 = time.process_time()
    for epoch in range(1, a.epochs + 1):
        net.train()
        order = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), bs):
            idx = order[i:i + bs]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            correct, vloss = 0, 0.0
            for i in range(0, len(xv), 1024):
                out = net(xv[i:i + 1024])
                vloss += loss_fn(out, yv[i:i + 1024]).item() * len(out)
                correct += (out.argmax(1) == yv[i:i + 1024]).sum().item()
        print(f"  epoch {epoch}: train_loss {total / len(xt):.4f} val_loss {vloss / len(xv):.4f} "
              f"val_acc {correct / len(xv):.3f}")
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(f"torch {torch.__version__} {a.arch} {SEASONS}x{FEATURES} x {CLASSES} classes, "
          f"{len(xt)} train + {len(xv)} val samples, batch {bs}, {a.epochs} epochs, "
          f"{torch.get_num_threads()} threads, {a.thread} thread: {secs:.1f} s, {len(xt) * a.epochs / secs:.0f} samples/s, "
          f"CPU {cpu:.1f} s, {len(xt) * a.epochs / cpu:.0f} samples per CPU-second")


if __name__ == "__main__":
    main()
