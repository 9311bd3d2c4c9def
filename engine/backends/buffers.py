"""The arrays a backend trains: `Network` (the parameters and the optimizer's state) and
`Workspace` (the buffers one training step writes), as backend arrays."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ops


def keeps_slope(net, l):
    """Whether hidden layer l keeps its slope act'(z) for the backward pass (ops.KEEPS_SLOPE)."""
    return l < len(net.activations) - 1 and net.activations[l] in ops.KEEPS_SLOPE


def carve(flat, shapes, start=0):
    """(views of consecutive stretches of the 1-D array flat, one per shape, from `start`;
    where the last one ends)."""
    views = []
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views, start


def batch_weight(weights, n):
    """What a minibatch's mean divides by: its n rows, or the sum of their sample weights
    (1 when that sum is 0: the minibatch then takes a step with a zero gradient)."""
    if weights is None:
        return n
    total = float(np.sum(weights, dtype=np.float64))
    return total if total > 0 else 1.0


@dataclass
class Network:
    """Parameters of an MLP, held as backend arrays.

    ``activations[l]`` is applied after layer ``l``; the last one is the output
    activation. The optimizer's state (velocities, Adam's moments) has one array per
    parameter, weights first, then biases; the model allocates what its optimizer needs.
    """

    weights: list
    biases: list
    activations: tuple
    loss: str
    dtype: np.dtype
    velocities: list | None = None       # per parameter: velocity, or Adam's first moment
    second_moments: list | None = None   # per parameter: Adam's second moment
    bf16: bool = False                   # training products in bf16-mixed (engine/precision.py)
    # the 1-D array every parameter and state array above is a view of, in that order
    # (weights, biases, velocities, second moments; TrainState's buffer), or None
    flat: object = field(default=None, repr=False, compare=False)
    # what a backend prepared for these very arrays (native: the whole-set pass's plan)
    prepared: dict = field(default_factory=dict, repr=False, compare=False)

    def state(self, i, n_state):
        """Parameter i's optimizer state arrays (n_state of them)."""
        return tuple(arrays[i] for arrays in (self.velocities, self.second_moments)[:n_state])

    @property
    def sizes(self):
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def output(self):
        return self.activations[-1]


@dataclass
class Workspace:
    """Every buffer a training step writes, allocated once per (batch, dtype, backend).

    A step over a shorter last batch uses the first ``m`` rows of each buffer
    (row slices of C-ordered arrays stay contiguous).
    """

    batch_size: int
    x: object            # (batch, n_in) gathered inputs
    t: object            # (batch, n_classes) one-hot targets
    a: list              # a[l]: (batch, n_l) outputs of layer l
    d: list              # d[l]: (batch, n_l) dL/dz of layer l
    gw: list             # gradient of each weight matrix
    gb: list             # gradient of each bias vector
    w: object = None     # (batch,) the minibatch's sample weights
    s: list = None       # s[l]: (batch, n_l) kept slopes of ops.KEEPS_SLOPE layers, or None
    plan: object = None  # a backend's prepared epoch for this workspace (native: EpochPlan)
    plan_key: tuple = ()  # what the plan was built for; a different key rebuilds it
    data: tuple = None   # (X, a backend's own copy of it (native bf16: packed or rounded
                         # rows), the function that made it)

    def prepared(self, key, build):
        """The plan for `key`, built by build() when the key differs from the last one. Keys
        hold the objects a plan reads (the weight lists, optimizer state) and compare them
        by identity: an id() is reused by the next list once the old one is freed."""
        old = self.plan_key
        if self.plan is None or len(old) != len(key) or not all(
                a is b or (isinstance(a, (str, int, float, bool)) and a == b)
                for a, b in zip(old, key)):
            self.plan, self.plan_key = build(), key
        return self.plan

    def copy_of(self, X, make):
        """A backend's copy of the training rows X (made by make(X)), kept while the same X
        comes back; TrainState.forget_data drops it where a fit starts, since X may have
        been changed in place since."""
        if self.data is None or self.data[0] is not X or self.data[2] != make:
            self.data = (X, make(X), make)
        return self.data[1]
