"""The package's shape: every module imports alone, no module imports another that
imports it back (directly or in a circle), and the public entry points stay where users
find them."""
import pathlib
import subprocess
import sys

import pytest

import engine
from helpers import engine_imports, package_modules

ROOT = pathlib.Path(engine.__file__).parent
MODULES = package_modules()
EXTENSIONS = {"engine._native"}      # compiled; it imports nothing of the package


def _imports(name, path):
    """The engine modules `name` imports anywhere in its source (functions included)."""
    return {m for m in engine_imports(name, path, MODULES.keys() | EXTENSIONS)
            if m in MODULES and m != name}


def test_no_import_cycles():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # the package's __init__ imports its parts; a part importing the package back is a circle
    for name, deps in graph.items():
        if name != "engine":
            assert "engine" not in deps, f"{name} imports the engine package itself"
    graph = {n: {d for d in deps if d != "engine" and not n.startswith(d + ".")}
             for n, deps in graph.items() if n != "engine"}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            cycle = trail[trail.index(node):] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            visit(dep, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_each_module_imports_alone():
    """Every module in a fresh interpreter of its own (all started at once: each spends
    most of its half second importing NumPy)."""
    names = sorted(n for n in MODULES if not n.endswith("__main__"))
    procs = {n: subprocess.Popen([sys.executable, "-c", f"import {n}"], stderr=subprocess.PIPE,
                                 text=True) for n in names}
    failed = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed[name] = err.strip().splitlines()[-1:]
    assert not failed, failed


def test_public_entry_points():
    import engine.reference
    from engine.reference import NeuralNetMLP
    assert engine.reference.NeuralNetMLP is NeuralNetMLP
    assert engine.NeuralNetMLP.__module__ == "engine.textbook.dropin"
    out = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT.parent.parent)
    assert out.returncode == 0 and "train" in out.stdout


def test_the_version_is_written_once():
    from engine._version import __version__
    assert engine.__version__ == __version__
    pyproject = (ROOT.parent / "pyproject.toml")
    if pyproject.exists():
        assert "version = \"" not in pyproject.read_text()


def test_scikit_learn_is_needed_only_by_engine_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"      # as if not installed
            "import engine\n"
            "assert not any(m.startswith('sklearn') and sys.modules[m] for m in sys.modules)\n"
            "try:\n"
            "    engine.MLPClassifier\n"
            "except ImportError as exc:\n"
            "    assert 'engine[sklearn]' in str(exc), exc\n"
            "else:\n"
            "    raise AssertionError('no ImportError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_optional_extras_bring_what_they_need():
    """The cuda extra brings numba-cuda with its CUDA compiler and libraries (bare numba-cuda
    has none and the backend would be silently unavailable); sklearn and mpi exist."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    extras = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("numba-cuda[cu12]") for r in extras["cuda"])
    assert any(r.startswith("numba-cuda[cu13]") for r in extras["cuda13"])
    assert any(r.startswith("scikit-learn") for r in extras["sklearn"])
    assert any(r.startswith("mpi4py") for r in extras["mpi"])
