"""The architecture's rules, checked on the sources: API -> trainer -> backend contract ->
kernels. Only engine/backends touches the extension; the model's state is reached through
`MLP.state`, not its private attributes; no source file grows past 450 lines (that the
modules import each other without a cycle is tests/test_package.py's)."""
import os
import re

import numpy as np

import engine
from helpers import engine_imports, package_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "engine")
MAX_LINES = 450


def _sources(folder, suffixes=(".py",)):
    for base, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith(suffixes):
                yield os.path.join(base, name)


def test_only_the_backends_import_the_extension():
    outside = [name for name, path in package_modules().items()
               if not name.startswith("engine.backends")
               and "engine._native" in engine_imports(name, path, {"engine._native"})]
    assert outside == []


def test_the_model_s_private_attributes_stay_in_the_model():
    model = engine.MLP([3, 2], backend="numpy")
    private = sorted(k for k in vars(model) if k.startswith("_"))
    pattern = re.compile(r"\.(" + "|".join(map(re.escape, private)) + r")\b")
    uses = []
    for path in _sources(PACKAGE):
        if os.path.relpath(path, PACKAGE) == "model.py":
            continue
        for n, line in enumerate(open(path), 1):
            if pattern.search(line) and "self._" not in line:
                uses.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    assert len(uses) <= 5, "\n".join(uses)


def test_no_source_file_is_longer_than_the_limit():
    long = []
    for folder, suffixes in ((PACKAGE, (".py",)), (os.path.join(ROOT, "csrc"), (".c", ".h")),
                             (os.path.join(ROOT, "bindings"), (".pyx", ".pxi", ".pxd"))):
        for path in _sources(folder, suffixes):
            n = sum(1 for _ in open(path))
            if n > MAX_LINES:
                long.append(f"{os.path.relpath(path, ROOT)}: {n} lines")
    assert long == []


def test_fit_signatures_come_from_the_option_table():
    import inspect

    from engine import fit_options
    fit = inspect.signature(engine.MLP.fit).parameters
    for option in fit_options.OPTIONS:
        assert fit[option.name].default == option.default or \
            (option.default is None and fit[option.name].default is None)
    assert np.isclose(fit["learning_rate"].default, 0.1)
