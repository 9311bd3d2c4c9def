"""Sphinx configuration of engine's documentation (`python -m sphinx -W docs docs/_build`).

The fit options' page is generated here from engine/fit_options.py, the table that
MLP.fit, engine.distributed.fit and the CLI take their options from."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import engine  # noqa: E402
from engine import fit_options  # noqa: E402

project = "engine"
author = "the engine developers"
release = engine.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest", "sphinx.ext.viewcode", "numpydoc",
              "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# the Markdown pages were the README's sections and link to files of the repository
# (benches/results/..., csrc/README.md), which are not pages of this site
suppress_warnings = ["myst.xref_missing"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
html_theme = "pydata_sphinx_theme"
html_title = f"engine {release}"
exclude_patterns = ["_build", "_generated/README.md"]
nitpicky = False
# the doctests train on the shipped MNIST sample with the NumPy backend: no build needed
doctest_global_setup = "import numpy as np\nimport engine"


def _option_table():
    rows = ["Option", "Default", "What it does"]
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 20 15 65", ""]
    for i, row in enumerate([rows] + [[f"``{o.name}``", f"``{o.default!r}``", o.help]
                                      for o in fit_options.OPTIONS]):
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(lines) + "\n"


os.makedirs(os.path.join(os.path.dirname(__file__), "_generated"), exist_ok=True)
with open(os.path.join(os.path.dirname(__file__), "_generated", "fit_options.rst"), "w") as f:
    f.write(_option_table())
