"""Manifests for the real public data sets the paper's experiments use.

Each function takes the folder of downloaded files (laid out as ``../shared/data``: see its
README) and writes a manifest (absolute paths) into ``out_dir`` that ``pitfall build``
accepts:

- :func:`roadmap_manifest`: Roadmap RNA-seq labels (RPKM > 0.5) on 2 kbp upstream of each
  GENCODE v10 TSS, chr1-22, the 56 epigenomes other than E000 (no signal, no sequence);
- :func:`tad_manifest`: TAD boundaries on 40 kb bins of chr1-22 from seven domain lists;
- :func:`ctcf_manifest`: CTCF binding on 200 bp bins of chr1-22 from seven narrowPeak files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pitfall.manifest import dump_manifest

AUTOSOMES = [f"chr{i}" for i in range(1, 23)]

#: cell type id -> (file under tads/, study); ids follow the paper's TAD cell lines.
TAD_FILES = {
    "hESC": ("hESC_domains_hg19.bed", "Dixon 2012"),
    "IMR90": ("IMR90_domains_hg19.bed", "Dixon 2012"),
    "GM12878": ("GM12878_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "HUVEC": ("HUVEC_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "K562": ("K562_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "NHEK": ("NHEK_Arrowhead_domainlist.bed.gz", "Rao 2014"),
    "IMR90-Rao": ("IMR90_Arrowhead_domainlist.txt.gz", "Rao 2014"),
}
CTCF_CELL_LINES = ["A549", "H1-hESC", "HeLa-S3", "HepG2", "IMR-90", "K562", "MCF-7"]


def _need(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; the data folder must hold the files listed in its README "
            "(roadmap/, tads/, ctcf/)"
        )
    return path.resolve()


def roadmap_epigenomes(data_dir: str | os.PathLike) -> pd.DataFrame:
    """Roadmap epigenome metadata: index EID, columns ``name`` and ``group``.

    The summary table has two header lines; the first names the columns.
    """
    path = _need(Path(data_dir) / "roadmap" / "Consolidated_EpigenomeIDs_summary_Table.tsv")
    table = pd.read_csv(path, sep="\t", header=0, skiprows=[1], dtype=str)
    table = table[table["Epigenome ID (EID)"].str.match(r"^E\d{3}$", na=False)]
    return pd.DataFrame(
        {
            "name": table["Standardized Epigenome name"].str.strip().to_numpy(),
            "group": table["GROUP"].str.strip().to_numpy(),
        },
        index=pd.Index(table["Epigenome ID (EID)"].to_numpy(), name="eid"),
    )


def roadmap_manifest(data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the Roadmap expression manifest (the paper's gene set and labels)."""
    data = Path(data_dir)
    table = _need(data / "roadmap" / "57epigenomes.RPKM.pc.gz")
    header = pd.read_csv(table, sep="\t", nrows=0, index_col=False).columns[1:]
    meta = roadmap_epigenomes(data)
    cell_types = {}
    for eid in (c for c in header if c != "E000"):
        row = meta.loc[eid] if eid in meta.index else None
        cell_types[eid] = {
            "name": row["name"] if row is not None else eid,
            "group": row["group"] if row is not None else "",
        }
    return dump_manifest(
        {
            "assembly": "hg19",
            "chroms": AUTOSOMES,
            "loci": {
                "tss": str(_need(data / "roadmap" / "gencode_10_genes.gtf.gz")),
                "upstream": 2000,
                "downstream": 0,
            },
            "target": {"kind": "expression", "table": str(table), "threshold": 0.5},
            "cell_types": cell_types,
        },
        Path(out_dir) / "manifest.toml",
    )


def tad_manifest(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, bin_size: int = 40_000
) -> Path:
    """Write the TAD-boundary manifest: 40 kb bins of chr1-22, seven domain lists."""
    data = Path(data_dir)
    return dump_manifest(
        {
            "assembly": "hg19",
            "chroms": AUTOSOMES,
            "loci": {
                "bins": str(_need(data / "ctcf" / "hg19.autoX.chrom.sizes")),
                "bin_size": bin_size,
            },
            "target": {"kind": "domains"},
            "cell_types": {
                ct: {"name": ct, "group": study, "target": str(_need(data / "tads" / f))}
                for ct, (f, study) in TAD_FILES.items()
            },
        },
        Path(out_dir) / "manifest.toml",
    )


def ctcf_manifest(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, bin_size: int = 200
) -> Path:
    """Write the CTCF manifest: 200 bp bins of chr1-22, seven narrowPeak files."""
    data = Path(data_dir)
    return dump_manifest(
        {
            "assembly": "hg19",
            "chroms": AUTOSOMES,
            "locus_chunk": 1 << 18,
            "loci": {
                "bins": str(_need(data / "ctcf" / "hg19.autoX.chrom.sizes")),
                "bin_size": bin_size,
            },
            "target": {"kind": "peaks"},
            "cell_types": {
                ct: {
                    "name": ct,
                    "group": "ENCODE",
                    "target": str(_need(data / "ctcf" / f"{ct}.CTCF.conservative.narrowPeak.gz")),
                }
                for ct in CTCF_CELL_LINES
            },
        },
        Path(out_dir) / "manifest.toml",
    )
