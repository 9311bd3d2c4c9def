"""`engine bench --workload contention`: each runner quiet, then beside a busy process.
The lecture epoch, and the small fits most scikit-learn users run (usually beside other
work: a notebook, a browser, a grid search)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import warnings

from .tables import markdown_table
from .timing import median_time

BUSY_LOOP = "while True: pass"


def contention_rows(workloads, repeats=3, log=print):
    """Each runner of each workload ([(workload, [(runner, make)])], make() returning the
    callable to time) quiet, then beside a competing CPU-bound process (a busy loop in a
    subprocess): the slowdown a user sees when other work runs."""
    rows = []
    for workload, runs in workloads:
        for label, make in runs:
            run = make()
            log(f"bench: contention {label} quiet ...")
            quiet, _ = median_time(run, repeats)
            log(f"bench: contention {label} beside a busy process ...")
            with busy_process():
                loaded, times = median_time(run, repeats)
            rows.append({"workload": workload, "runner": label, "quiet_s": quiet,
                         "loaded_s": loaded, "times_s": times, "slowdown": loaded / quiet})
    return rows


@contextlib.contextmanager
def busy_process():
    """A CPU-bound busy loop in a subprocess while the block runs."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.3)                             # let the scheduler see it
        yield
    finally:
        busy.kill()
        busy.wait()


SMALL_FITS = "small fits (scikit-learn's training-curves example: 28 fits, 4 data sets)"
# the example's seven learning strategies
STRATEGIES = (
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0.9,
     "nesterovs_momentum": False, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0.9,
     "nesterovs_momentum": True, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0.9,
     "nesterovs_momentum": False, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0.9,
     "nesterovs_momentum": True, "learning_rate_init": 0.2},
    {"solver": "adam", "learning_rate_init": 0.01})


def small_fits_workload(quick, others):
    """(workload, runners) of SMALL_FITS with engine.sklearn, and scikit-learn itself unless
    others is False; quick: 40 epochs per fit instead of the example's 400."""
    max_iter = 40 if quick else 400
    fits = [("engine.sklearn", lambda: small_fits("engine", max_iter))]
    if others:
        fits.append(("scikit-learn", lambda: small_fits("sklearn", max_iter)))
    return f"{SMALL_FITS}, max_iter {max_iter}", fits


def small_fits(which, max_iter=400):
    """A callable running scikit-learn's "compare stochastic learning strategies" example
    (iris, digits, circles, moons; each strategy for max_iter epochs, 15 on digits) with
    engine.sklearn's MLPClassifier (which="engine") or scikit-learn's own."""
    from sklearn import datasets
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import MinMaxScaler
    if which == "engine":
        from ..sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    iris, digits = datasets.load_iris(), datasets.load_digits()
    data = [(iris.data, iris.target, max_iter), (digits.data, digits.target, 15),
            (*datasets.make_circles(noise=0.2, factor=0.5, random_state=1), max_iter),
            (*datasets.make_moons(noise=0.3, random_state=0), max_iter)]
    data = [(MinMaxScaler().fit_transform(X), y, n) for X, y, n in data]

    def run():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            for X, y, n in data:
                for strategy in STRATEGIES:
                    MLPClassifier(random_state=0, max_iter=n, **strategy).fit(X, y)
    return run


def format_contention_table(rows):
    """Seconds per epoch (the lecture) or per run of all the fits (small fits)."""
    cells = [{"workload": r["workload"], "runner": r["runner"], "quiet s": f"{r['quiet_s']:.3f}",
              "beside a busy process s": f"{r['loaded_s']:.3f}",
              "slowdown": f"{r['slowdown']:.2f}x"} for r in rows]
    return markdown_table(cells, ["workload", "runner", "quiet s", "beside a busy process s",
                                  "slowdown"], "llrrr")


