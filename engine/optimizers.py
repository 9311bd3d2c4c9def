"""Optimizers and learning-rate schedules: what a step does, and how the step size moves
from epoch to epoch. Every backend applies the same rules (csrc/kernels.h writes them out):

- ``sgd``: p -= lr * g; with ``momentum`` m: v = m v - lr g, p += v; with ``nesterov``:
  v = m v - lr g, p += m v - lr g (scikit-learn's form).
- ``adam``: m1 = b1 m1 + (1 - b1) g; m2 = b2 m2 + (1 - b2) g^2;
  p -= lr_t m1 / (sqrt(m2) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) at step t
  (Kingma & Ba's bias correction folded into the step size, as scikit-learn does).

g is the minibatch gradient of the loss, plus alpha * W / batch for weights under the L2
penalty ``alpha`` (the loss then includes alpha/2 |W|^2 / batch; biases are exempt).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

OPTIMIZERS = ("sgd", "adam")
# state arrays per parameter that each kind of step keeps
STATE_ARRAYS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}
SCHEDULES = ("constant", "invscaling", "adaptive")


class StepRule(NamedTuple):
    """One step's rule as the kernels take it. kind: "sgd", "momentum", "nesterov" or
    "adam"; t: the steps taken, the current one included (a fused epoch: before it)."""
    kind: str
    learning_rate: float
    momentum: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    t: int = 0

    def step_size(self):
        """lr, or Adam's bias-corrected lr_t for step t."""
        if self.kind != "adam":
            return self.learning_rate
        t = max(self.t, 1)
        return self.learning_rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)


@dataclass(frozen=True)
class Optimizer:
    """Which optimizer and its constants (the learning rate comes from the schedule)."""
    name: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8

    @property
    def kind(self):
        if self.name == "adam":
            return "adam"
        if self.momentum == 0:
            return "sgd"
        return "nesterov" if self.nesterov else "momentum"

    @property
    def n_state(self):
        """State arrays per parameter: 0 (sgd), 1 (velocity) or 2 (Adam's moments)."""
        return STATE_ARRAYS[self.kind]

    def rule(self, learning_rate, t):
        return StepRule(self.kind, float(learning_rate), float(self.momentum),
                        float(self.beta_1), float(self.beta_2), float(self.epsilon), int(t))


class Schedule:
    """The learning rate of each epoch.

    constant: lr0. invscaling: lr0 / (t + 1) ** power_t, t the samples seen before the
    epoch. adaptive: lr0 until more than n_iter_no_change epochs in a row fail to lower the
    training loss by tol, then divided by 5 each time that happens again; training stops when
    it happens with lr already at or below 1e-6 (scikit-learn's rule). A callable: epoch
    (0-based) -> lr."""

    def __init__(self, kind, lr0, power_t=0.5, tol=1e-4, n_iter_no_change=10):
        self.kind, self.lr0, self.power_t = kind, float(lr0), float(power_t)
        self.tol, self.n_iter_no_change = float(tol), int(n_iter_no_change)
        self.lr = self.lr0
        self.best_loss, self.bad_epochs = math.inf, 0

    def learning_rate(self, epoch, samples_seen):
        if callable(self.kind):
            lr = float(self.kind(epoch))
            if not (math.isfinite(lr) and lr >= 0):
                raise ValueError(f"learning_rate({epoch}) returned {lr!r}; expected a "
                                 f"finite number >= 0")
            self.lr = lr
        elif self.kind == "invscaling":
            self.lr = self.lr0 / (samples_seen + 1) ** self.power_t
        return self.lr

    def epoch_done(self, train_loss):
        """After an epoch: returns a reason to stop, or None."""
        if self.kind != "adaptive":
            return None
        if train_loss > self.best_loss - self.tol:
            self.bad_epochs += 1
        else:
            self.bad_epochs = 0
        self.best_loss = min(self.best_loss, train_loss)
        if self.bad_epochs > self.n_iter_no_change:
            if self.lr <= 1e-6:
                return (f"the adaptive learning rate reached {self.lr:.3g} (<= 1e-6) and the "
                        f"loss still did not improve by tol for {self.n_iter_no_change} epochs")
            self.lr /= 5
            self.bad_epochs = 0
        return None
