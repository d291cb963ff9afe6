"""CTCF ChIP-seq peaks of seven ENCODE cell lines (an ENCODE-DREAM style task): the manifest.

The conservative IDR peaks and hg19 sizes are those of the public GitHub repository
uci-cbcl/FactorNet (``data/``, ``resources/``), laid out under ``ctcf/`` of a data folder as
``../shared/data`` (see its README). A 200 bp bin of chr1-22 is bound in a cell line when a
peak summit falls in it: a 14.4-million-locus cube.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pitfall.datasets._folder import require_file, write_manifest_file
from pitfall.genome import AUTOSOMES

__all__ = ["BIN_SIZE", "CTCF_CELL_LINES", "manifest_from_folder", "peak_file"]

CTCF_CELL_LINES: tuple[str, ...] = (
    "A549",
    "H1-hESC",
    "HeLa-S3",
    "HepG2",
    "IMR-90",
    "K562",
    "MCF-7",
)
BIN_SIZE = 200
CHROM_SIZES = Path("ctcf") / "hg19.autoX.chrom.sizes"
#: Loci per chunk of the cube: 2**18 bins, so 14.4 M loci are 55 chunks.
LOCUS_CHUNK = 1 << 18


def peak_file(cell_line: str) -> Path:
    """The narrowPeak file of a cell line, relative to the data folder."""
    return Path("ctcf") / f"{cell_line}.CTCF.conservative.narrowPeak.gz"


def manifest_from_folder(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, bin_size: int = BIN_SIZE
) -> Path:
    """Write ``out_dir/manifest.toml``: 200 bp bins of chr1-22, seven narrowPeak files.

    Parameters
    ----------
    data_dir
        The data folder (``ctcf/``).
    out_dir, bin_size
        As :func:`bins_manifest`.

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    targets = {ct: ("ENCODE", peak_file(ct)) for ct in CTCF_CELL_LINES}
    return bins_manifest(data_dir, out_dir, bin_size, "peaks", targets, locus_chunk=LOCUS_CHUNK)


def bins_manifest(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    bin_size: int,
    kind: str,
    targets: dict[str, tuple[str, Path]],
    **options: Any,
) -> Path:
    """Write ``out_dir/manifest.toml`` of hg19 bins over chr1-22 (sizes from
    :data:`CHROM_SIZES`), one target file per cell type: the CTCF and TAD data sets.

    Parameters
    ----------
    data_dir
        The data folder.
    out_dir
        Where the manifest goes (absolute paths to the data files).
    bin_size
        Bin length in bp.
    kind
        The manifest's ``[target] kind``.
    targets
        Cell type id -> (group, its target file relative to ``data_dir``).
    **options
        Further top-level manifest keys (``locus_chunk``).

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    data = Path(data_dir)
    return write_manifest_file(
        {
            "assembly": "hg19",
            "chroms": list(AUTOSOMES),
            **options,
            "loci": {"bins": str(require_file(data / CHROM_SIZES)), "bin_size": bin_size},
            "target": {"kind": kind},
            "cell_types": {
                ct: {"name": ct, "group": group, "target": str(require_file(data / f))}
                for ct, (group, f) in targets.items()
            },
        },
        Path(out_dir) / "manifest.toml",
    )
