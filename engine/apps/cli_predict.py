"""`engine predict MODEL DATA` and `engine evaluate MODEL DATA`: a saved model on data."""
from __future__ import annotations

import io
import os
import sys

import numpy as np

from ..backends import backend_choices


def add_predict_commands(sub):
    for name, func, what in (("predict", cmd_predict, "predictions of a saved model"),
                             ("evaluate", cmd_evaluate, "loss and accuracy of a saved model")):
        p = sub.add_parser(name, help=f"{what} on your data (.npz, .npy, 'X.npy,y.npy', .csv)",
                           description=f"{what[0].upper() + what[1:]} (a model.npz that "
                                       f"`engine train` or MLP.save wrote) on DATA.")
        p.add_argument("model", metavar="MODEL", help="the model file (model.npz)")
        p.add_argument("data", metavar="DATA",
                       help="a .npz with X (and y), a .npy of X, 'X.npy,y.npy', or a .csv")
        p.add_argument("--target", metavar="COLUMN",
                       help="with a .csv: the target column (by header name or index), "
                            "left out of the features")
        p.add_argument("--backend", default="auto", choices=backend_choices(),
                       help="where the math runs (default: auto)")
        if name == "predict":
            p.add_argument("--out", metavar="FILE",
                           help="write the predictions to FILE (.npy, or .csv for one value "
                                "per line and column) instead of printing them")
            p.add_argument("--proba", action="store_true",
                           help="the output activations (class probabilities) instead of "
                                "the predicted labels")
        p.set_defaults(func=func)


def _model_and_data(args, need_target):
    from ..model import MLP
    from .data_files import load_features_and_target
    model = MLP.load(args.model, backend=args.backend)
    X, y, X_test, y_test = load_features_and_target(args.data, args.target, need_target)
    if X_test is not None:                  # a training file: use its test arrays
        X, y = X_test, y_test
    if need_target and y is None:
        raise ValueError(f"{args.data}: no targets (y) to evaluate against")
    inputs = model.layer_sizes[0]
    if args.data.endswith(".csv") and args.target is None and np.shape(X)[1] == inputs + 1:
        raise ValueError(f"{args.data}: {inputs + 1} columns for a model of {inputs} inputs; "
                         f"if one of them is the target, name it with --target")
    return model, X, y      # predict/evaluate convert X (and say if a value is out of range)


def cmd_predict(args):
    model, X, _ = _model_and_data(args, need_target=False)
    out = model.predict_proba(X) if args.proba else model.predict(X)
    if args.out:
        from ..io import atomic_write_bytes
        buf = io.BytesIO()
        if args.out.endswith(".csv"):
            np.savetxt(buf, out.reshape(len(out), -1), delimiter=",",
                       fmt="%d" if out.dtype.kind in "iu" else "%.9g")
        else:
            np.save(buf, out)
        atomic_write_bytes(args.out, buf.getvalue())
        print(f"wrote {len(out)} predictions to {args.out}", file=sys.stderr)
    else:
        np.savetxt(sys.stdout, out.reshape(len(out), -1), delimiter=",",
                   fmt="%d" if out.dtype.kind in "iu" else "%.6g")
    return 0


def cmd_evaluate(args):
    model, X, y = _model_and_data(args, need_target=True)
    result = model.evaluate(X, y)
    acc = result["accuracy"]
    print(f"{os.path.basename(args.model)} on {len(X)} rows of {args.data}: loss "
          f"{result['loss']:.6g}" + ("" if acc != acc else f", accuracy {100 * acc:.2f}%"))
    return 0
