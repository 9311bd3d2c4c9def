"""The training state (engine/train_state.py): the parameters and the optimizer's state as
views of one flat buffer, and the divergence guard's check over it."""
import numpy as np
import pytest

import engine
from helpers import AVAILABLE


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def _views_in_order(state):
    """Whether every parameter and state array is the next stretch of state.buffer."""
    net, start = state.net, 0
    base = state.backend.to_numpy(state.buffer)
    for a in net.weights + net.biases + (net.velocities or []) + (net.second_moments or []):
        host = state.backend.to_numpy(a)
        size = host.size
        if not np.array_equal(host.ravel(), base[start:start + size]):
            return False
        start += size
    return start == base.size


@pytest.mark.parametrize("backend", AVAILABLE)
def test_parameters_and_optimizer_state_are_views_of_one_buffer(backend):
    """Weights, biases, then each optimizer state array in the same order, in one buffer
    (39 parameters here);
    switching optimizers keeps the parameters and starts the new state at zero."""
    X, y = _data()
    model = engine.MLP([5, 4, 3], backend=backend, seed=5)
    state = model.state
    assert _views_in_order(state) and state.net.velocities is None
    model.fit(X, y, epochs=1, batch_size=12, optimizer="adam", learning_rate=0.01,
              progress=False)
    assert _views_in_order(state) and state.backend.to_numpy(state.buffer).size == 3 * 39
    if backend != "cuda":
        state.buffer[:20] = 0.5                         # the first weight matrix is 4 x 5
        assert np.all(model.weights[0] == 0.5)
    weights = [w.copy() for w in model.weights]
    model.fit(X, y, epochs=1, learning_rate=0.0, momentum=0.9, progress=False)
    assert _views_in_order(state) and state.net.second_moments is None
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, weights))
    assert all(not np.any(state.backend.to_numpy(v)) for v in state.net.velocities)


def test_set_weights_copies_into_a_new_buffer_and_the_guard_sees_every_parameter():
    model = engine.MLP([5, 4, 3], backend="numpy", seed=5)
    mine = [np.ones((4, 5)), np.ones((3, 4))], [np.zeros(4), np.zeros(3)]
    model.set_weights(*mine)
    model.state.buffer[...] = 2.0
    assert np.all(mine[0][0] == 1.0)                    # the caller's arrays stay as given
    assert model.state.params_finite()
    model.state.net.biases[1][2] = np.nan               # a bias alone diverging counts
    assert not model.state.params_finite()
