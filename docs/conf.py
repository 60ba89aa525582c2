"""Sphinx settings for the docs site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra);
``tests/docs/test_docs_build.py`` runs exactly that, so a warning fails the test command.

Sphinx rather than MkDocs because every docstring in the package is reStructuredText (``:param x:``,
``:class:`...```): autodoc renders those as written, so the API reference is the docstrings themselves. Pages are
Markdown (MyST), so the README and the docs share one syntax, and the examples in both are run by
``tests/docs/test_doc_examples.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_coupa_ihr import __version__  # noqa: E402 - after the path is set

project = "airflow-provider-coupa-ihr"
author = "airflow-provider-coupa-ihr developers"
copyright = "2026, airflow-provider-coupa-ihr developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The hook's and operators' Airflow base classes are documented by Airflow.
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"Coupa IHR provider {__version__}"
