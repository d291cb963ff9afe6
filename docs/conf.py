"""Sphinx configuration of pitfall's API reference (built in CI with warnings as errors)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

project = "pitfall"
author = "the pitfall developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# Each module documents its __all__, so a package documents the names it re-exports.
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints name classes of numpy, xarray and the rest; they are not ours to resolve.
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["autodoc.import_object"]
