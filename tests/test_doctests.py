"""The examples in the package's docstrings run, as the documentation shows them (the docs'
own pages run as doctests in CI's Sphinx build, .ci/run)."""
import doctest
import importlib
import pkgutil

import pytest

import engine

# the CUDA modules import numba (their own tests run them under the simulator)
SKIP = ("engine.backends.cuda",)


def _modules():
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if not info.name.startswith(SKIP) and not info.name.endswith("__main__"):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples_run(name):
    if name.startswith("engine.sklearn"):
        pytest.importorskip("sklearn")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0


def test_the_fit_example_is_among_them():
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(engine.model) if t.examples]
    assert any(t.name.endswith("MLP.fit") for t in tests)


# the public API: each has a numpydoc docstring with the sections its kind calls for
PUBLIC = {
    "engine.MLP": "PE", "engine.MLP.fit": "PRE", "engine.MLP.predict": "PRE",
    "engine.MLP.predict_proba": "PRE", "engine.MLP.evaluate": "PRE",
    "engine.MLP.loss_and_gradients": "PRE", "engine.MLP.save": "PE", "engine.MLP.load": "PRE",
    "engine.MLP.set_weights": "PE", "engine.MLP.export_onnx": "PE",
    "engine.History": "E", "engine.History.save": "PE", "engine.History.load": "PR",
    "engine.History.plot": "PE", "engine.History.plot_diagnostics": "PE",
    "engine.NeuralNetMLP": "PE", "engine.NeuralNetMLP.forward": "PRE",
    "engine.NeuralNetMLP.backward": "PRE", "engine.NeuralNetMLP.step": "PRE",
    "engine.NeuralNetMLP.fit": "PRE",
    "engine.load_mnist": "PRE", "engine.load_mnist_sample": "PRE",
    "engine.get_backend": "PRE", "engine.available_backends": "RE",
    "engine.backend_names": "RE",
    "engine.distributed.fit": "PRE", "engine.distributed.load_shard": "PRE",
    "engine.distributed.shard_range": "PRE", "engine.distributed.global_order": "PRE",
}
SECTIONS = {"P": "Parameters", "R": "Returns", "E": "Examples"}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_api_has_numpydoc_sections(name):
    import inspect
    module, _, rest = name.partition(".")
    obj = importlib.import_module(module)
    for part in rest.split("."):
        obj = getattr(obj, part)
    doc = inspect.getdoc(obj) or ""
    for letter in PUBLIC[name]:
        assert f"{SECTIONS[letter]}\n---" in doc, f"{name}: no {SECTIONS[letter]} section"
    assert "Raises\n---" in doc or name.startswith("engine.History") or \
        name in ("engine.available_backends", "engine.backend_names",
                 "engine.distributed.shard_range", "engine.distributed.global_order"), \
        f"{name}: no Raises section"
