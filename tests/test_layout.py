"""The architecture's rules, checked on the sources: API -> trainer -> backend contract ->
kernels. Only engine/backends touches the extension; the model's state is reached through
`MLP.state`, not its private attributes; no source file grows past 450 lines; the
package's modules import each other without a cycle."""
import ast
import os
import re

import numpy as np

import engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "engine")
MAX_LINES = 450


def _sources(folder, suffixes=(".py",)):
    for base, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith(suffixes):
                yield os.path.join(base, name)


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path, top_level_only):
    """The engine modules `path` imports (resolved to dotted names)."""
    tree = ast.parse(open(path).read())
    module = _module_name(path)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}")
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("engine")}


def test_only_the_backends_import_the_extension():
    outside = [os.path.relpath(p, ROOT) for p in _sources(PACKAGE)
               if not os.path.relpath(p, PACKAGE).startswith("backends")
               and "engine._native" in _imports(p, top_level_only=False)]
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


def test_the_package_s_modules_import_each_other_without_a_cycle():
    modules = {_module_name(p): p for p in _sources(PACKAGE)}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, top_level_only=True):
            # "engine.backends.base.Backend" -> the longest prefix that is a module
            parts = imported.split(".")
            for k in range(len(parts), 0, -1):
                candidate = ".".join(parts[:k])
                if candidate in modules and candidate != name:
                    targets.add(candidate)
                    break
        graph[name] = targets
    # a package importing its own submodules is how Python packages are built, not a cycle
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_fit_signatures_come_from_the_option_table():
    import inspect

    from engine import fit_options
    fit = inspect.signature(engine.MLP.fit).parameters
    for option in fit_options.OPTIONS:
        assert fit[option.name].default == option.default or \
            (option.default is None and fit[option.name].default is None)
    assert np.isclose(fit["learning_rate"].default, 0.1)
