"""Training history: per-minibatch losses, per-epoch metrics, and the lecture's plots."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import numpy as np

from .io import atomic_write_bytes


def epochs_text(n):
    """ "1 epoch", "3 epochs" """
    return f"{n} epoch{'' if n == 1 else 's'}"


@dataclass
class History:
    """What `MLP.fit` records.

    batch_loss: the loss of every minibatch, before its update, in order.
    epoch_*: per epoch, over the whole training set (and validation_data when given),
    measured after the epoch's updates. diagnostics: per epoch, per layer, when
    fit(..., diagnostics=True). learning_rate: each epoch's; best_epoch and stop_reason say
    where and why training ended (early stopping, an adaptive schedule, or the epochs).

    Examples
    --------
    >>> import engine
    >>> X, y, Xt, yt = engine.load_mnist_sample()
    >>> history = engine.MLP([784, 16, 10], backend="numpy").fit(
    ...     X, y, epochs=2, validation_data=(Xt, yt), progress=False)
    >>> history.epochs, len(history.batch_loss), len(history.val_accuracy)
    (2, 50, 2)
    """

    batch_loss: list = field(default_factory=list)
    batches_per_epoch: int = 0
    epoch_loss: list = field(default_factory=list)
    epoch_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    diagnostics: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)   # per epoch, as the schedule set it
    best_epoch: int | None = None    # early stopping: the epoch (1-based) whose weights were kept
    stop_reason: str | None = None   # why training ended
    meta: dict = field(default_factory=dict)

    @property
    def epochs(self):
        return len(self.epoch_loss)

    def __repr__(self):
        """A one-line summary; the full record is in the fields (and `to_dict`)."""
        if not self.epochs:
            return "History(no epochs yet)"
        parts = [epochs_text(self.epochs), f"loss {self.epoch_loss[-1]:.4g}"]
        if self.epoch_accuracy:
            parts.append(f"accuracy {100 * self.epoch_accuracy[-1]:.2f}%")
        if self.val_accuracy:
            best = int(np.argmax(self.val_accuracy))
            parts.append(f"validation {100 * self.val_accuracy[-1]:.2f}% "
                         f"(best {100 * self.val_accuracy[best]:.2f}% at epoch {best + 1})")
        if self.best_epoch is not None:
            parts.append(f"best epoch {self.best_epoch}")
        if self.epoch_time:
            parts.append(f"{sum(self.epoch_time):.1f} s training")
        parts.append(f"{len(self.batch_loss)} minibatch losses")
        return "History(" + ", ".join(parts) + ")"

    def default_title(self):
        """What was trained, from the metadata fit recorded: the plots' title."""
        m = self.meta
        if "layer_sizes" not in m:
            return "Training history"
        net = "-".join(map(str, m["layer_sizes"]))
        title = (f"MLP {net}, {m.get('hidden_activation')} hidden, "
                 f"{m.get('output_activation')} output + {m.get('loss')}")
        if "learning_rate" in m:
            title += f" | lr {m['learning_rate']:g}, batch {m.get('batch_size')}"
        if m.get("momentum"):
            title += f", momentum {m['momentum']:g}"
        if "dtype" in m:
            title += f" | {m['dtype']} on {m.get('backend', '?')}"
        return title

    def to_dict(self):
        """The fields as a dict of plain lists and dicts (copies; JSON-ready). Not
        dataclasses.asdict: it deep-copies every float of the minibatch losses."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def save(self, path):
        """Write the history as JSON (atomically); `History.load` reads it back.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        OSError
            The file cannot be written; whatever was there is left as it was.

        Examples
        --------
        >>> import os, tempfile, engine
        >>> path = os.path.join(tempfile.mkdtemp(), "history.json")
        >>> engine.History(epoch_loss=[0.5]).save(path)
        >>> engine.History.load(path).epoch_loss
        [0.5]
        """
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1).encode())

    @classmethod
    def load(cls, path):
        """A history written by `save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        History

        Raises
        ------
        OSError, ValueError, TypeError
            No such file, or not a saved history.

        Examples
        --------
        See `save`.
        """
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))

    def plot(self, path, title=None):
        """A PNG with the lecture's panels: loss per minibatch, loss per epoch, accuracy per
        epoch; titled with what was trained unless `title` says otherwise.

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically.
        title : str, optional

        Examples
        --------
        >>> import os, tempfile, engine
        >>> h = engine.History(batch_loss=[1.0, 0.5], batches_per_epoch=2, epoch_loss=[0.7],
        ...                    epoch_accuracy=[0.6])
        >>> h.plot(os.path.join(tempfile.mkdtemp(), "plot.png"))
        """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        ax = axes[0]
        losses = np.asarray(self.batch_loss, dtype=float)
        ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.4, color="tab:blue", alpha=0.6)
        if len(losses) >= 50:
            k = max(self.batches_per_epoch, 1)
            smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
            ax.plot(np.arange(k, len(losses) + 1), smooth, color="tab:red", lw=1.2,
                    label=f"running mean ({k} batches)")
            ax.legend()
        ax.set(xlabel="minibatch", ylabel="loss", title="Loss per minibatch")
        ep = np.arange(1, self.epochs + 1)
        ax = axes[1]
        ax.plot(ep, self.epoch_loss, marker=".", label="train")
        if self.val_loss:
            ax.plot(ep, self.val_loss, marker=".", label="validation")
        ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch (whole set)")
        ax.legend()
        ax = axes[2]
        ax.plot(ep, 100 * np.asarray(self.epoch_accuracy), marker=".", label="train")
        if self.val_accuracy:
            ax.plot(ep, 100 * np.asarray(self.val_accuracy), marker=".", label="validation")
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy per epoch")
        ax.legend()
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.suptitle(title or self.default_title())
        fig.tight_layout()
        _save_figure(fig, path)
        plt.close(fig)

    def plot_diagnostics(self, path, title=None):
        """A PNG of the gradient norms, weight norms, dead and saturated fractions per layer
        and epoch.

        Parameters
        ----------
        path : str or os.PathLike
        title : str, optional

        Raises
        ------
        ValueError
            The fit recorded no diagnostics (train with fit(..., diagnostics=True)).

        Examples
        --------
        >>> import os, tempfile, engine
        >>> X, y, _, _ = engine.load_mnist_sample()
        >>> h = engine.MLP([784, 8, 10], "relu", backend="numpy").fit(
        ...     X[:200], y[:200], epochs=2, diagnostics=True, progress=False)
        >>> h.plot_diagnostics(os.path.join(tempfile.mkdtemp(), "diagnostics.png"))
        """
        if not self.diagnostics:
            raise ValueError("no diagnostics recorded: train with fit(..., diagnostics=True)")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = np.arange(1, len(self.diagnostics) + 1)
        n_layers = len(self.diagnostics[0]["grad_norm"])
        panels = [("grad_norm", "mean gradient norm |dL/dW|", True),
                  ("weight_norm", "weight norm |W|", False),
                  ("dead_fraction", "dead ReLU units (fraction)", False),
                  ("saturated_fraction", "saturated activations (fraction)", False)]
        fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
        for ax, (key, label, log) in zip(axes, panels):
            values = np.array([d[key] for d in self.diagnostics], dtype=float)
            for l in range(n_layers):
                if np.all(np.isnan(values[:, l])):
                    continue
                ax.plot(ep, values[:, l], marker=".", label=f"layer {l + 1}")
            if log:
                ax.set_yscale("log")
            ax.set(xlabel="epoch", title=label)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        fig.suptitle(title or "Diagnostics: " + self.default_title())
        fig.tight_layout()
        _save_figure(fig, path)
        plt.close(fig)


def _save_figure(fig, path):
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def _plain(value):
    """A copy of a field's value: lists and dicts copied (their dicts too), numbers as is."""
    if isinstance(value, list):
        if not value or not isinstance(value[0], (list, dict)):   # numbers (one kind each)
            return list(value)
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) if isinstance(v, (list, dict)) else v for k, v in value.items()}
    return value
