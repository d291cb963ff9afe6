"""pitfall: machine learning across cell types, and the pitfall of memorised loci.

Schreiber, Singh, Bilmes, Noble (Genome Biology 2020) showed that models evaluated across
cell types look better the bigger they get only because they memorise each locus's average
activity; ``pitfall`` holds the data in one appendable cube, featurizes real files into it,
and evaluates models against the baselines that expose the memorisation.
"""

from importlib.metadata import PackageNotFoundError, version

from pitfall.audit import audit_predictions
from pitfall.cube import open_cube

try:
    __version__ = version("pitfall")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "audit_predictions", "open_cube"]
