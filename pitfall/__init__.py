"""pitfall: machine learning across cell types, and the pitfall of memorised loci.

Schreiber, Singh, Bilmes, Noble (Genome Biology 2020) showed that models evaluated across
cell types look better the bigger they get only because they memorise each locus's average
activity; ``pitfall`` holds the data in one appendable cube, featurizes real files into it,
and evaluates models against the baselines that expose the memorisation.

The public API at the top level (each imported on first use, so ``import pitfall`` is
cheap, and cheap in every Dask worker):

- :func:`open_cube`: a cube as a lazy :class:`xarray.Dataset`;
- :func:`build`, :func:`append`: featurize files into a cube (:mod:`pitfall.featurize`);
- :func:`audit_predictions`, :func:`audit_arrays`: does a model beat the baselines that
  expose the pitfall (from a cube, or from plain arrays)?

Everything else lives in its module: :mod:`pitfall.splits`, :mod:`pitfall.baselines`,
:mod:`pitfall.tasks`, :mod:`pitfall.evaluate`, :mod:`pitfall.models`, :mod:`pitfall.sweep`,
:mod:`pitfall.audit`, :mod:`pitfall.cube` and the rest.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("pitfall")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

_LAZY = {
    "open_cube": "pitfall.cube",
    "build": "pitfall.featurize",
    "append": "pitfall.featurize",
    "audit_predictions": "pitfall.audit",
    "audit_arrays": "pitfall.audit",
}

__all__ = ["__version__", "append", "audit_arrays", "audit_predictions", "build", "open_cube"]

if TYPE_CHECKING:
    from pitfall.audit import audit_arrays, audit_predictions
    from pitfall.cube import open_cube
    from pitfall.featurize import append, build


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pitfall' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
