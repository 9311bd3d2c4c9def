"""fit's options, declared once: name, default, constraint and help of each.

`MLP.fit`, `MLP.epoch_runner`, `engine.distributed.fit` and the trainer take their keyword
arguments from this table (their signatures are built from it), `check` validates them
once for every entry point, and the CLI reads its help text and defaults from it. A new
option is one row here plus what the trainer does with it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import checks
from . import dropout as masks
from .optimizers import OPTIMIZERS, SCHEDULES, Optimizer


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    check: Callable[[str, Any], Any]     # (name, value) -> the value to use, or raises
    help: str


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _unit_interval(name, value):
    """A number in [0, 1)."""
    return checks.non_negative_float(name, value, upper=1.0)


def _beta(name, value):
    value = checks.non_negative_float(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return value


def _choice(options):
    return lambda name, value: checks.choice(name, value, options)


def _schedule(name, value):
    return value if callable(value) else checks.choice(name, value, SCHEDULES)


def _as_is(name, value):
    return value


def _optional_positive_int(name, value):
    return None if value is None else checks.positive_int(name, value)


OPTIONS = (
    Option("epochs", 100, checks.positive_int, "passes over the training rows"),
    Option("batch_size", 100, checks.positive_int,
           "rows per minibatch (the last, shorter one is kept)"),
    Option("learning_rate", 0.1, checks.non_negative_float, "step size"),
    Option("momentum", 0.0, _unit_interval, "SGD momentum in [0, 1)"),
    Option("shuffle", True, _flag, "visit the rows in a fresh random order every epoch"),
    Option("validation_data", None, _as_is,
           "an (X_val, y_val) pair scored after every epoch"),
    Option("progress", True, _flag, "a progress bar on stderr"),
    Option("diagnostics", False, _flag,
           "record per-layer gradient and weight norms, dead and saturated units"),
    Option("optimizer", "sgd", _choice(OPTIMIZERS), "sgd (with momentum) or adam"),
    Option("nesterov", False, _flag, "Nesterov's momentum (with momentum)"),
    Option("beta_1", 0.9, _beta, "Adam's first-moment decay in [0, 1)"),
    Option("beta_2", 0.999, _beta, "Adam's second-moment decay in [0, 1)"),
    Option("epsilon", 1e-8, checks.non_negative_float, "Adam's denominator floor (> 0)"),
    Option("alpha", 0.0, checks.non_negative_float, "L2 penalty on the weights"),
    Option("schedule", "constant", _schedule,
           "learning-rate schedule: constant, invscaling, adaptive, or a callable epoch -> lr"),
    Option("power_t", 0.5, checks.non_negative_float, "invscaling's exponent"),
    Option("tol", 1e-4, checks.non_negative_float,
           "the improvement the adaptive schedule and early stopping ask of an epoch"),
    Option("n_iter_no_change", 10, checks.positive_int,
           "epochs without improvement before the schedule or early stopping acts"),
    Option("early_stopping", False, _flag,
           "stop when the validation loss stops improving, keep the best epoch's weights"),
    Option("validation_fraction", 0.1, _unit_interval,
           "with early stopping and no validation_data: the share of rows held out"),
    Option("sample_weight", None, _as_is, "one weight >= 0 per row"),
    Option("dropout", None, _as_is,
           "drop rate in [0, 1) of every hidden layer, or one per hidden layer"),
    Option("on_divergence", "raise", _choice(("raise", "continue")),
           "raise TrainingDiverged when a loss or weight stops being finite, or continue"),
    Option("checkpoint", None, _as_is, "a path written atomically during the fit"),
    Option("checkpoint_every", 1, checks.positive_int, "epochs between checkpoints"),
    Option("resume", False, _flag, "continue from the checkpoint when it exists"),
)
BY_NAME = {o.name: o for o in OPTIONS}
DEFAULTS = {o.name: o.default for o in OPTIONS}

# the options of an optimizer step (epoch_runner takes these, and the fit options below)
OPTIMIZER_OPTIONS = ("optimizer", "momentum", "nesterov", "beta_1", "beta_2", "epsilon")


def check(given, names=None):
    """Every option of `names` (default: all) from `given` (defaults filled in), each
    checked and normalised once; unknown names raise TypeError as Python's calls do."""
    names = [o.name for o in OPTIONS] if names is None else list(names)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise TypeError(f"unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(map(repr, unknown))}; the options are "
                        f"{', '.join(names)}")
    out = {}
    for name in names:
        option = BY_NAME[name]
        out[name] = option.check(name, given.get(name, option.default))
    if out.get("optimizer") == "adam" and out.get("epsilon", 1) == 0:
        raise ValueError("epsilon must be > 0 for adam")
    if out.get("resume") and out.get("checkpoint") is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    return out


def optimizer(options):
    """The engine Optimizer that checked options describe."""
    return Optimizer(options["optimizer"], options["momentum"], options["nesterov"],
                     options["beta_1"], options["beta_2"], options["epsilon"])


def dropout_rates(value, n_layers):
    """Per-layer drop rates (None when no unit is dropped)."""
    if value is None:
        return None
    rates = masks.rates(value, n_layers)
    return rates if any(rates) else None


def signature(leading=(), names=None, extra=()):
    """An inspect.Signature of (leading positional parameters, *, the options of `names`
    with their defaults, extra keyword-only (name, default) pairs): what a function taking
    **options shows to help() and to IDEs."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in leading]
    params += [inspect.Parameter(n, kw, default=BY_NAME[n].default)
               for n in (names or [o.name for o in OPTIONS])]
    params += [inspect.Parameter(n, kw, default=d) for n, d in extra]
    return inspect.Signature(params)


TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def numpydoc_parameters(names=None, indent="    "):
    """A numpydoc "Parameters" section for the options of `names` (default: all), from the
    table: what a function taking **options puts in its docstring."""
    lines = ["Parameters", "----------"]
    for name in names or [o.name for o in OPTIONS]:
        option = BY_NAME[name]
        kind = TYPES.get(type(option.default), "object")
        lines.append(f"{name} : {kind}, default={option.default!r}")
        lines.append(f"    {option.help[0].upper()}{option.help[1:]}.")
    return "\n".join(indent + line if line else line for line in lines)


def help_text(name):
    """The option's help with its default, for argparse."""
    option = BY_NAME[name]
    return f"{option.help} (default: {option.default})"
