"""TAD boundaries of seven cell lines (Dixon et al. 2012, Rao et al. 2014): the manifest.

The domain lists are those of the public GitHub repository akdemirlab/HiCPlotter
(``data/``), laid out under ``tads/`` of a data folder as ``../shared/data`` (see its
README). A 40 kb bin of chr1-22 is a boundary in a cell type when one of its domains starts
or ends in it (:func:`pitfall.sources.labels.read_domains` and the featurizer's rule).
"""

from __future__ import annotations

import os
from pathlib import Path

from pitfall.datasets.ctcf import bins_manifest

__all__ = ["BIN_SIZE", "TAD_FILES", "manifest_from_folder"]

#: cell type id -> (file under tads/, study); ids follow the paper's TAD cell lines. One list
#: per cell type: the folder also holds Rao 2014's IMR90 list, left out so the average
#: activity does not count IMR90 twice (Dixon's list is the paper's kind of call).
TAD_FILES: dict[str, tuple[str, str]] = {
    "hESC": ("hESC_domains_hg19.bed", "Dixon 2012"),
    "IMR90": ("IMR90_domains_hg19.bed", "Dixon 2012"),
    "GM12878": ("GM12878_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "HUVEC": ("HUVEC_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "K562": ("K562_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "NHEK": ("NHEK_Arrowhead_domainlist.bed.gz", "Rao 2014"),
}
#: The paper's TAD-boundary bins.
BIN_SIZE = 40_000


def manifest_from_folder(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, bin_size: int = BIN_SIZE
) -> Path:
    """Write ``out_dir/manifest.toml``: 40 kb bins of chr1-22, seven domain lists.

    Parameters
    ----------
    data_dir
        The data folder (``tads/`` and ``ctcf/hg19.autoX.chrom.sizes``).
    out_dir, bin_size
        As :func:`pitfall.datasets.ctcf.bins_manifest`.

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    targets = {ct: (study, Path("tads") / f) for ct, (f, study) in TAD_FILES.items()}
    return bins_manifest(data_dir, out_dir, bin_size, "domains", targets)
