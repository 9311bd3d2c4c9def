"""The one training loop (engine/training.py): options checked once from the table, hooks
as the only difference between entry points, the reduction hook of the backend contract,
and the training state the model exposes."""
import inspect

import numpy as np
import pytest

import engine
from engine import fit_options
from engine.training import Hooks, Trainer
from helpers import AVAILABLE

HOST = [b for b in AVAILABLE if b in ("numpy", "native")]


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def test_every_option_has_a_default_a_check_and_help():
    for option in fit_options.OPTIONS:
        assert option.help
        assert option.check(option.name, option.default) == option.default or \
            callable(option.default)
    assert list(inspect.signature(engine.MLP.fit).parameters)[3:] == \
        [o.name for o in fit_options.OPTIONS]


@pytest.mark.parametrize("bad,error,match", [
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"momentum": 1.0}, ValueError, "momentum must be"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ({"epsilon": 0.0, "optimizer": "adam"}, ValueError, "epsilon must be > 0 for adam"),
    ({"resume": True}, ValueError, "resume=True needs checkpoint"),
    ({"learning_rte": 0.1}, TypeError, "unexpected keyword argument 'learning_rte'"),
])
def test_options_are_checked_once_before_training(bad, error, match):
    X, y = _data()
    model = engine.MLP([5, 4, 3], backend="numpy")
    before = model.weights
    with pytest.raises(error, match=match):
        model.fit(X, y, **{"epochs": 1, "progress": False, **bad})
    for a, b in zip(model.weights, before):
        np.testing.assert_array_equal(a, b)


def test_the_distributed_fit_takes_the_same_table():
    import engine.distributed as dist
    params = inspect.signature(dist.fit).parameters
    assert [o.name for o in fit_options.OPTIONS] == \
        [p for p in params if p in fit_options.BY_NAME]


class _Reversed(Hooks):
    """A hook that visits the rows in reverse order instead of shuffling them."""

    def shuffle(self, trainer, order):
        order[...] = order[::-1].copy()


def test_hooks_decide_the_row_order():
    X, y = _data()
    a = engine.MLP([5, 4, 3], backend="numpy", seed=2)
    b = engine.MLP([5, 4, 3], backend="numpy", seed=2)
    a.fit(X[::-1], y[::-1], epochs=1, batch_size=10, shuffle=False, progress=False)
    options = fit_options.check(dict(epochs=1, batch_size=10, progress=False))
    Trainer(b, X, y, options, _Reversed()).run()
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-12)


@pytest.mark.parametrize("backend", HOST)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_identity_reduction_leaves_the_epoch_unchanged(backend, dtype):
    """train_epoch(reduce=...) on every host backend: called once per minibatch with its
    rows and gradients, and a reduction that changes nothing changes nothing."""
    from engine.optimizers import Optimizer
    X, y = _data(103)
    results, seen = [], []

    def identity(i, loss, weight, grads):
        seen.append((i, weight, len(grads)))
        return loss, weight
    for reduce in (None, identity):
        model = engine.MLP([5, 6, 3], "tanh", backend=backend, dtype=dtype, seed=1)
        state = model.state
        opt = Optimizer("adam")
        state.optimizer_state(opt)
        losses = np.empty(11)
        model.backend.train_epoch(state.net, model.backend.asarray(X.astype(dtype)),
                                  model.backend.asarray(y), np.arange(103), 10,
                                  opt.rule(0.01, 0), 0.1, state.workspace(10), losses,
                                  reduce=reduce)
        results.append((model.weights, losses.copy()))
    assert [s[:2] for s in seen] == [(i, 10.0 if i < 10 else 3.0) for i in range(11)]
    assert all(n == 4 for _, _, n in seen)          # 2 weight and 2 bias gradients
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=tol)


@pytest.mark.parametrize("backend", HOST)
def test_a_reduction_that_doubles_the_gradient_doubles_the_step(backend):
    """What a reduction writes into the gradients is what the step uses: doubling them
    with SGD equals training with twice the learning rate."""
    from engine.optimizers import Optimizer
    X, y = _data(40)

    def double(i, loss, weight, grads):
        for g in grads:
            g *= 2
        return loss, weight
    out = []
    for lr, reduce in ((0.2, None), (0.1, double)):
        model = engine.MLP([5, 4, 3], backend=backend, dtype="float64", seed=3)
        state = model.state
        opt = Optimizer("sgd")
        state.optimizer_state(opt)
        model.backend.train_epoch(state.net, model.backend.asarray(X),
                                  model.backend.asarray(y), np.arange(40), 8,
                                  opt.rule(lr, 0), 0.0, state.workspace(8), np.empty(5),
                                  reduce=reduce)
        out.append(model.weights)
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", HOST)
def test_the_whole_set_objective_of_every_backend_matches_numpy(backend):
    X, y = _data(50)
    w = np.random.default_rng(1).uniform(0, 2, 50)
    ref = engine.MLP([5, 4, 3], "tanh", backend="numpy", dtype="float64", seed=4)
    model = engine.MLP([5, 4, 3], "tanh", backend=backend, dtype="float64", seed=4)
    a = ref.backend.whole_set_loss_and_grads(ref.state.net, X, y, w, chunk=7)
    b = model.backend.whole_set_loss_and_grads(model.state.net, X, y, w, chunk=7)
    assert b[0] == pytest.approx(a[0], rel=1e-12)
    for ga, gb in zip(a[1] + a[2], b[1] + b[2]):
        np.testing.assert_allclose(gb, ga, rtol=1e-11, atol=1e-14)
    assert model.backend.whole_set_loss_and_grads(model.state.net, X, y,
                                                  np.zeros(50)) is None


def test_the_state_is_the_model_s_and_carries_over_between_fits():
    X, y = _data()
    model = engine.MLP([5, 4, 3], backend="numpy", seed=5)
    model.fit(X, y, epochs=2, batch_size=12, optimizer="adam", learning_rate=0.01,
              progress=False)
    state = model.state
    assert state.counters["epochs"] == 2 and state.counters["t"] == 20
    assert state.counters["samples"] == 240
    order = state.order.copy()
    model.fit(X, y, epochs=1, batch_size=12, optimizer="adam", learning_rate=0.01,
              progress=False)
    assert state.counters["t"] == 30
    assert not np.array_equal(order, state.order)       # the next epoch's shuffle



def test_a_checkpoint_written_at_ctrl_c_holds_that_epochs_schedule(tmp_path):
    """Ctrl-C while an epoch is scored: the checkpoint counts that epoch and holds the
    schedule after it, so the resumed fit is the uninterrupted one (the adaptive schedule
    here divides the learning rate by 5 after the third epoch, the one cut short)."""
    from engine import interrupt, training
    X, y = _data()
    kw = dict(epochs=5, batch_size=12, learning_rate=0.1, schedule="adaptive", tol=1e9,
              n_iter_no_change=1, progress=False)
    whole = engine.MLP([5, 4, 3], backend="numpy", seed=5)
    h_whole = whole.fit(X, y, **kw)

    class CtrlCAfterThreeEpochs(Hooks):
        def evaluate(self, trainer, X, y, weights, stats=None):
            if trainer.counters["epochs"] == 3:
                if interrupt._native is not None:
                    interrupt._native.request_stop()
                else:
                    interrupt._flag = True
            return super().evaluate(trainer, X, y, weights, stats)
    path = str(tmp_path / "run.npz")
    cut = engine.MLP([5, 4, 3], backend="numpy", seed=5)
    with pytest.raises(KeyboardInterrupt, match="after epoch 3"):
        training.fit(cut, X, y, hooks=CtrlCAfterThreeEpochs(), checkpoint=path, **kw)
    resumed = engine.MLP([5, 4, 3], backend="numpy", seed=5)
    h = resumed.fit(X, y, checkpoint=path, resume=True, **kw)
    assert h.learning_rate == h_whole.learning_rate
    assert h_whole.learning_rate[3] < h_whole.learning_rate[2]    # the drop after epoch 3
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_resumes_only_in_its_own_precision(tmp_path):
    """float32 and bf16-mixed train the same float32 weights differently: resuming one's
    checkpoint in the other would mix the two in one history. A checkpoint older than
    bf16-mixed names no precision: it is its dtype's."""
    import json
    from engine.model_file import _digest
    X, y = _data()
    kw = dict(epochs=2, batch_size=12, progress=False)
    for wrote, resumes in (("float32", "bf16-mixed"), ("bf16-mixed", "float32")):
        path = tmp_path / f"{wrote}.npz"
        engine.MLP([5, 4, 3], backend="numpy", seed=5, precision=wrote).fit(
            X, y, checkpoint=str(path), **kw)
        other = engine.MLP([5, 4, 3], backend="numpy", seed=5, precision=resumes)
        with pytest.raises(ValueError, match=f"its precision is '{wrote}', this model's "
                                             f"'{resumes}'"):
            other.fit(X, y, checkpoint=str(path), resume=True, **dict(kw, epochs=3))
    path = tmp_path / "float32.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    del meta["precision"]
    meta["sha256"] = _digest(arrays, meta)
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    h = engine.MLP([5, 4, 3], backend="numpy", seed=5).fit(
        X, y, checkpoint=str(path), resume=True, **dict(kw, epochs=3))
    assert h.epochs == 3
