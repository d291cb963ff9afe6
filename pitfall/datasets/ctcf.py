"""CTCF ChIP-seq peaks of seven ENCODE cell lines (an ENCODE-DREAM style task): the manifest.

The conservative IDR peaks and hg19 sizes are those of the public GitHub repository
uci-cbcl/FactorNet (``data/``, ``resources/``), laid out under ``ctcf/`` of a data folder as
``../shared/data`` (see its README). Two labellings:

- :func:`manifest_from_folder`: a 200 bp bin of chr1-22 is bound in a cell line when a
  peak summit falls in it (or, ``rule="overlap"``, when a peak overlaps it): a
  14.4-million-locus cube;
- :func:`dream_manifest`: the ENCODE-DREAM challenge's conventions, 200 bp bins every 50 bp
  (57.6 million loci), bound where a conservative peak overlaps the bin, ambiguous (NaN)
  where only a relaxed peak does (MCF-7 has no relaxed set: no ambiguous bins), and NaN in
  every line where a region of the blacklist (:data:`BLACKLIST`) overlaps it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pitfall.datasets._folder import require_file, write_manifest_file
from pitfall.genome import AUTOSOMES

__all__ = [
    "BIN_SIZE",
    "BLACKLIST",
    "CTCF_CELL_LINES",
    "DREAM_STRIDE",
    "dream_manifest",
    "manifest_from_folder",
    "peak_file",
    "relaxed_file",
]

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
#: The ENCODE-DREAM challenge's stride between 200 bp bins.
DREAM_STRIDE = 50
#: The challenge's blacklist (FactorNet's ``resources/blacklist.bed.gz``), relative to the
#: data folder.
BLACKLIST = Path("ctcf") / "blacklist.bed.gz"
CHROM_SIZES = Path("ctcf") / "hg19.autoX.chrom.sizes"
#: Loci per chunk of the cube: 2**18 bins, so 14.4 M loci are 55 chunks.
LOCUS_CHUNK = 1 << 18


def peak_file(cell_line: str) -> Path:
    """The narrowPeak file of a cell line, relative to the data folder."""
    return Path("ctcf") / f"{cell_line}.CTCF.conservative.narrowPeak.gz"


def relaxed_file(cell_line: str) -> Path:
    """The relaxed narrowPeak file of a cell line (the ambiguous peaks), relative to the
    data folder."""
    return Path("ctcf") / f"{cell_line}.CTCF.relaxed.narrowPeak.gz"


def manifest_from_folder(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    bin_size: int = BIN_SIZE,
    *,
    stride: int | None = None,
    rule: str = "summit",
    min_overlap: int = 1,
    ambiguous: bool = False,
    blacklist: bool = False,
) -> Path:
    """Write ``out_dir/manifest.toml``: 200 bp bins of chr1-22, seven narrowPeak files.

    Parameters
    ----------
    data_dir
        The data folder (``ctcf/``).
    out_dir, bin_size
        As :func:`bins_manifest`.
    stride
        Bp between bin starts (None: ``bin_size``, bins that tile the genome).
    rule, min_overlap
        The manifest's ``[target]`` peak rule (``"summit"`` or ``"overlap"``).
    ambiguous
        Name each line's relaxed peaks (where the folder has them) as its ambiguous peaks.
    blacklist
        Exclude the bins overlapping :data:`BLACKLIST`.

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    data = Path(data_dir)
    targets = {ct: ("ENCODE", peak_file(ct)) for ct in CTCF_CELL_LINES}
    target: dict[str, Any] = {"rule": rule}
    if rule == "overlap":
        target["min_overlap"] = min_overlap
    if blacklist:
        target["blacklist"] = str(require_file(data / BLACKLIST))
    extra = {}
    if ambiguous:
        extra = {
            ct: {"ambiguous": str(require_file(data / relaxed_file(ct)))}
            for ct in CTCF_CELL_LINES
            if (data / relaxed_file(ct)).is_file()
        }
    return bins_manifest(
        data_dir,
        out_dir,
        bin_size,
        "peaks",
        targets,
        locus_chunk=LOCUS_CHUNK,
        stride=stride,
        target=target,
        cell_type_extra=extra,
    )


def dream_manifest(data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/manifest.toml`` with the ENCODE-DREAM challenge's labelling.

    200 bp bins every 50 bp over chr1-22; overlap rule (1 bp); relaxed peaks ambiguous;
    :data:`BLACKLIST` excluded (see :func:`manifest_from_folder`).
    """
    return manifest_from_folder(
        data_dir,
        out_dir,
        BIN_SIZE,
        stride=DREAM_STRIDE,
        rule="overlap",
        ambiguous=True,
        blacklist=True,
    )


def bins_manifest(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    bin_size: int,
    kind: str,
    targets: dict[str, tuple[str, Path]],
    *,
    stride: int | None = None,
    target: dict[str, Any] | None = None,
    cell_type_extra: dict[str, dict[str, Any]] | None = None,
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
    stride
        ``[loci] stride`` (None: bins that tile the genome).
    target
        Further ``[target]`` keys (the peak rule, the blacklist).
    cell_type_extra
        Cell type id -> further keys of its ``[cell_types.<id>]`` table (``ambiguous``).
    **options
        Further top-level manifest keys (``locus_chunk``).

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    data = Path(data_dir)
    loci: dict[str, Any] = {"bins": str(require_file(data / CHROM_SIZES)), "bin_size": bin_size}
    if stride is not None:
        loci["stride"] = stride
    extra = cell_type_extra or {}
    return write_manifest_file(
        {
            "assembly": "hg19",
            "chroms": list(AUTOSOMES),
            **options,
            "loci": loci,
            "target": {"kind": kind, **(target or {})},
            "cell_types": {
                ct: {
                    "name": ct,
                    "group": group,
                    "target": str(require_file(data / f)),
                    **extra.get(ct, {}),
                }
                for ct, (group, f) in targets.items()
            },
        },
        Path(out_dir) / "manifest.toml",
    )
