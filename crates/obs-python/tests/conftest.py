"""Shared fixtures: a small real numpy MLP (forward, backward, SGD) and its data."""

import os

import numpy as np
import pytest


class MLP:
    """A two-layer ReLU/softmax network trained with plain SGD, all in numpy."""

    def __init__(self, sizes=(4, 16, 3), seed=0):
        rng = np.random.default_rng(seed)
        self.w1 = (rng.standard_normal((sizes[0], sizes[1])) * np.sqrt(2 / sizes[0])).astype(np.float32)
        self.b1 = np.zeros(sizes[1], np.float32)
        self.w2 = (rng.standard_normal((sizes[1], sizes[2])) * np.sqrt(1 / sizes[1])).astype(np.float32)
        self.b2 = np.zeros(sizes[2], np.float32)

    def forward(self, x):
        self.x = x
        self.z1 = x @ self.w1 + self.b1
        self.a1 = np.maximum(self.z1, 0)
        z2 = self.a1 @ self.w2 + self.b2
        z2 = z2 - z2.max(axis=1, keepdims=True)
        e = np.exp(z2)
        self.p = e / e.sum(axis=1, keepdims=True)
        return self.p

    def loss(self, y):
        return float(-np.log(self.p[np.arange(len(y)), y] + 1e-12).mean())

    def backward(self, y):
        n = len(y)
        d2 = self.p.copy()
        d2[np.arange(n), y] -= 1
        d2 /= n
        self.gw2 = self.a1.T @ d2
        self.gb2 = d2.sum(axis=0)
        d1 = (d2 @ self.w2.T) * (self.z1 > 0)
        self.gw1 = self.x.T @ d1
        self.gb1 = d1.sum(axis=0)

    def step(self, lr):
        old = {"dense_0": self.w1.copy(), "dense_1": self.w2.copy()}
        self.w1 -= lr * self.gw1
        self.b1 -= lr * self.gb1
        self.w2 -= lr * self.gw2
        self.b2 -= lr * self.gb2
        return old


def blobs(n=240, seed=1):
    """Three separable Gaussian blobs in 4 dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0, 0, 1], [-2, 1, 0, -1], [0, -2, 2, 0]], np.float32)
    y = rng.integers(0, 3, n)
    x = centers[y] + rng.standard_normal((n, 4)).astype(np.float32) * 0.7
    return x.astype(np.float32), y


@pytest.fixture
def mlp():
    return MLP()


@pytest.fixture
def data():
    return blobs()


@pytest.fixture
def obs_bin():
    """The `obs` command line built by `cargo test` (OBS_BIN), for reading logs back."""
    path = os.environ.get("OBS_BIN", "")
    if not path or not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail(f"OBS_BIN={path!r} does not exist")
        pytest.skip("the obs binary is not built (set OBS_BIN)")
    return path
