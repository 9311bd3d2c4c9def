"""The examples in the package's docstrings run, as the documentation shows them (the docs'
own pages run as doctests in CI's Sphinx build, .ci/run)."""
import doctest
import importlib
import pkgutil

import pytest

import engine

# modules that need an optional extra or a device are left to their own tests
SKIP = ("engine.sklearn", "engine.distributed", "engine.backends.cuda", "engine.onnx_export")


def _modules():
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if not info.name.startswith(SKIP) and not info.name.endswith("__main__"):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0


def test_the_fit_example_is_among_them():
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(engine.model) if t.examples]
    assert any(t.name.endswith("MLP.fit") for t in tests)
