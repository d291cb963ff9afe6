"""Read one chromosome's runs of a bigWig as numpy, and arcsinh window means over them.

Three backends read the same runs:

* ``"builtin"`` (the default): this package's own reader of the bigWig format
  (:mod:`~pitfall.sources.bigwig.format`, decoding data blocks with
  :mod:`~pitfall.sources.bigwig.blocks`). It reads only the data blocks that the windows
  touch and decodes a batch of them in one Numba call.
* ``"pybigtools"`` and ``"pyBigWig"``: the two libraries, for comparison and as fallbacks
  (pyBigWig also reads URLs).

:mod:`~pitfall.sources.bigwig.backends` opens a file with any of them and reads runs from
its handle; :mod:`~pitfall.sources.bigwig.windows` is the interface callers use (a path,
file object or handle in; sizes, runs, window means out); :mod:`~pitfall.sources.bigwig.errors`
says how reading fails.
"""

from pitfall.sources.bigwig.backends import BACKENDS, Backend, open_bigwig
from pitfall.sources.bigwig.errors import MissingChromosome
from pitfall.sources.bigwig.format import BigWigReader
from pitfall.sources.bigwig.windows import chrom_sizes, has_data, read_runs, window_means

__all__ = [
    "BACKENDS",
    "Backend",
    "BigWigReader",
    "MissingChromosome",
    "chrom_sizes",
    "has_data",
    "open_bigwig",
    "read_runs",
    "window_means",
]
