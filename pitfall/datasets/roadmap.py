"""Roadmap Epigenomics: the paper's expression task, downloaded or from a local folder.

The task (Schreiber et al. 2020), defined once here: a window of :data:`UPSTREAM` = 2 kbp
upstream of each TSS (:data:`DOWNSTREAM` = 0), the autosomes
(:data:`pitfall.genome.AUTOSOMES`), label = RPKM > :data:`THRESHOLD` = 0.5, and the
epigenomes of Roadmap's RNA-seq matrix other than E000 (the Universal Human Reference, not a
cell type). :func:`write_manifest` is the one writer of its manifest; two callers fill it:

- :func:`fetch` (``pitfall fetch roadmap``) downloads, with :mod:`pitfall.download`:
  Roadmap's consolidated RNA-seq RPKM matrix (protein-coding genes x 57 epigenomes); the
  consolidated MACS2 -log10(p-value) bigWig of each (epigenome, mark); the GENCODE gene
  annotation (v19 by default, or v10, the one Roadmap quantified with); the hg19 genome
  (``genome=True``), gunzipped to a plain ``hg19/hg19.fa`` so that pyfaidx indexes it (UCSC
  ships plain gzip, not bgzip). ``chroms`` lists only the autosomes present in the fetched
  annotation (and FASTA), so a mirror holding a few chromosomes gives a manifest
  ``pitfall build`` accepts unchanged.
- :func:`manifest_from_folder` writes the labels-only manifest (no signal, no sequence) of a
  data folder laid out as ``../shared/data`` (``roadmap/``: the RPKM matrix, GENCODE v10
  genes and Roadmap's epigenome summary table, whose names it uses).

:func:`fetched_manifest` says whether a folder holds a complete fetch with genome and marks
(what the full real-data report needs) and, if not, what it lacks; :func:`imputation_manifest`
writes, from such a folder, the manifest of an imputation cube: genome bins over the
chromosomes asked for, each epigenome's consolidated marks as signal. :func:`write_mirror`
lays a synthetic compendium (:mod:`pitfall.synth`) out as a mirror, so that the path from
download to figure runs on generated content.

Local layout of a fetch under ``DEST``::

    rna/57epigenomes.RPKM.pc.gz
    bigwig/{EID}-{MARK}.pval.signal.bigwig
    gencode/gencode.v19.annotation.gtf.gz        (or v10)
    hg19/hg19.fa                                 (genome=True)
    checksums.tsv                                path, bytes, sha256, url of every file
    manifest.toml

Mirror layout: ``mirror=URL`` (or the environment variable ``PITFALL_MIRROR``) replaces
every source by one base under which these relative paths are served::

    {mirror}/roadmap/data/byDataType/rna/expression/57epigenomes.RPKM.pc.gz
    {mirror}/roadmap/data/byFileType/signal/consolidated/macs2signal/pval/{EID}-{MARK}.pval.signal.bigwig
    {mirror}/gencode/Gencode_human/release_19/gencode.v19.annotation.gtf.gz   (release_10, v10)
    {mirror}/gencode/Gencode_human/release_19/MD5SUMS                        (optional)
    {mirror}/hg19/hg19.fa.gz
    {mirror}/hg19/md5sum.txt                                                 (optional)

i.e. the public paths with the host stripped (``egg2.wustl.edu/roadmap/...`` ->
``roadmap/...``, ``ftp.ebi.ac.uk/pub/databases/gencode/...`` -> ``gencode/...``), and
UCSC's ``goldenPath/hg19/bigZips/`` shortened to ``hg19/``. A ``file://`` mirror is not
supported (serve a local copy with ``python -m http.server``). Roadmap publishes no
checksums; GENCODE's ``MD5SUMS`` and UCSC's ``md5sum.txt`` are used when present.

Partial results: when some downloads fail the run goes on and the report lists the
failures. The manifest never names a missing file: it is written for the epigenomes whose
bigWigs are all complete (the others are listed as left out), and not written at all (any
older ``manifest.toml`` is removed) when a shared file (RPKM matrix, annotation, or the
genome when asked for) is missing or no epigenome is complete.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pitfall import download
from pitfall._logs import progress_bars
from pitfall.datasets._folder import require_file, write_manifest_file
from pitfall.genome import AUTOSOMES, CORE_MARKS

if TYPE_CHECKING:
    from pitfall.synth import SynthCompendium

__all__ = [
    "ANNOTATIONS",
    "DOWNSTREAM",
    "FETCHED_MANIFEST",
    "FetchReport",
    "IMPUTATION_BIN",
    "Plan",
    "THRESHOLD",
    "UPSTREAM",
    "builtin_epigenomes",
    "epigenome_table",
    "fetch",
    "fetched_manifest",
    "imputation_manifest",
    "manifest_from_folder",
    "mirror_base",
    "parse_epigenomes",
    "plan",
    "rpkm_columns",
    "write_manifest",
    "write_mirror",
]

#: The paper's expression task: 2 kbp upstream of each TSS, label = RPKM > 0.5.
UPSTREAM, DOWNSTREAM, THRESHOLD = 2000, 0, 0.5
#: Not a cell type: Roadmap's Universal Human Reference.
REFERENCE_EPIGENOME = "E000"

ROADMAP_BASE = "https://egg2.wustl.edu"
GENCODE_BASE = "https://ftp.ebi.ac.uk/pub/databases"
UCSC_HG19 = "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips"
MIRROR_ENV = "PITFALL_MIRROR"

RPKM_FILE = "57epigenomes.RPKM.pc.gz"
RPKM_PATH = f"roadmap/data/byDataType/rna/expression/{RPKM_FILE}"
BIGWIG_DIR = "roadmap/data/byFileType/signal/consolidated/macs2signal/pval"
ANNOTATIONS = {
    "gencode-v19": "gencode/Gencode_human/release_19/gencode.v19.annotation.gtf.gz",
    "gencode-v10": "gencode/Gencode_human/release_10/gencode.v10.annotation.gtf.gz",
}

#: The files of a data folder as ``../shared/data`` (see its README), under it.
FOLDER_RPKM = Path("roadmap") / RPKM_FILE
FOLDER_GENES = Path("roadmap") / "gencode_10_genes.gtf.gz"
FOLDER_EPIGENOMES = Path("roadmap") / "Consolidated_EpigenomeIDs_summary_Table.tsv"


def bigwig_file(eid: str, mark: str) -> str:
    """Roadmap's name of the consolidated p-value bigWig of an (epigenome, mark)."""
    return f"{eid}-{mark}.pval.signal.bigwig"


# --------------------------------------------------------------------------------------------
# The manifest


def write_manifest(
    path: str | os.PathLike,
    epigenomes: Mapping[str, tuple[str, str]],
    *,
    annotation: str,
    rpkm: str,
    chroms: Sequence[str] = AUTOSOMES,
    marks: Sequence[str] = (),
    bigwig_dir: str | None = None,
    fasta: str | None = None,
    header: str = "",
) -> Path:
    """Write the expression-task manifest (atomically) and check that it loads.

    Parameters
    ----------
    path
        The manifest file; relative paths below resolve against its folder.
    epigenomes
        Epigenome id -> (name, group), in cube order.
    annotation, rpkm
        The GENCODE genes (GTF) and Roadmap's RPKM matrix.
    chroms
        Chromosomes of the loci (default the autosomes).
    marks, bigwig_dir
        Histone marks, and the folder of each epigenome's ``{EID}-{MARK}.pval.signal.bigwig``
        (both or neither: no marks, no ``[signal]``).
    fasta
        The genome, for a ``[sequence]`` section.
    header
        Comment lines put first.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if bool(marks) != (bigwig_dir is not None):
        raise ValueError("write_manifest needs both marks and bigwig_dir, or neither")
    data: dict = {
        "assembly": "hg19",
        "chroms": list(chroms),
        "loci": {"tss": annotation, "upstream": UPSTREAM, "downstream": DOWNSTREAM},
    }
    if fasta:
        data["sequence"] = {"fasta": fasta}
    if marks:
        data["signal"] = {"marks": list(marks)}
    data["target"] = {"kind": "expression", "table": rpkm, "threshold": THRESHOLD}
    cell_types: dict[str, dict] = {}
    for eid, (name, group) in epigenomes.items():
        spec: dict = {"name": name, "group": group}
        if marks:
            spec["signal"] = {m: f"{bigwig_dir}/{bigwig_file(eid, m)}" for m in marks}
        cell_types[eid] = spec
    data["cell_types"] = cell_types
    return write_manifest_file(data, path, header)


def epigenome_table(path: str | os.PathLike) -> pd.DataFrame:
    """Roadmap's epigenome metadata: index EID, columns ``name`` and ``group``.

    ``Consolidated_EpigenomeIDs_summary_Table.tsv`` has two header lines; the first names
    the columns.
    """
    table = pd.read_csv(path, sep="\t", header=0, skiprows=[1], dtype=str)
    table = table[table["Epigenome ID (EID)"].str.match(r"^E\d{3}$", na=False)]
    return pd.DataFrame(
        {
            "name": table["Standardized Epigenome name"].str.strip().to_numpy(),
            "group": table["GROUP"].str.strip().to_numpy(),
        },
        index=pd.Index(table["Epigenome ID (EID)"].to_numpy(), name="eid"),
    )


def rpkm_columns(path: Path) -> list[str]:
    """Epigenome ids in the header of the RPKM matrix (its first field is the gene column).

    Read from the header line itself: every data row ends with a stray tab, which shifts
    pandas' columns when the first is taken as the index.
    """
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    return [c.strip() for c in header[1:] if c.strip()]


def builtin_epigenomes() -> dict[str, tuple[str, str]]:
    """Roadmap epigenomes with RNA-seq (E000 excluded): id -> (name, group)."""
    from pitfall.synth import CELL_TYPES

    return {eid: (name, group) for eid, name, group in CELL_TYPES}


def manifest_from_folder(data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/manifest.toml``: labels only (no signal, no sequence), GENCODE v10.

    Parameters
    ----------
    data_dir
        The data folder (``roadmap/``: RPKM matrix, GENCODE v10 genes, epigenome table).
    out_dir
        Where the manifest goes (absolute paths to the data files).

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    data = Path(data_dir)
    table = require_file(data / FOLDER_RPKM)
    meta = epigenome_table(require_file(data / FOLDER_EPIGENOMES))
    epigenomes = {
        eid: ((meta.loc[eid, "name"], meta.loc[eid, "group"]) if eid in meta.index else (eid, ""))
        for eid in rpkm_columns(table)
        if eid != REFERENCE_EPIGENOME
    }
    return write_manifest(
        Path(out_dir) / "manifest.toml",
        epigenomes,
        annotation=str(require_file(data / FOLDER_GENES)),
        rpkm=str(table),
        header="# Roadmap RNA-seq labels from a local data folder (labels only).\n",
    )


# --------------------------------------------------------------------------------------------
# What to fetch


def mirror_base(mirror: str | None) -> str | None:
    """The mirror in use: ``mirror``, else ``$PITFALL_MIRROR``, else None (public sources)."""
    base = mirror or os.environ.get(MIRROR_ENV) or None
    return base.rstrip("/") if base else None


def source_urls(mirror: str | None, annotation: str = "gencode-v19") -> dict[str, str]:
    """Base URLs (``roadmap``, ``annotation`` dir, ``hg19`` dir) for a mirror or the public sites."""
    rel = ANNOTATIONS[annotation].rsplit("/", 1)[0]
    if mirror:
        return {"roadmap": mirror, "annotation": f"{mirror}/{rel}", "hg19": f"{mirror}/hg19"}
    return {"roadmap": ROADMAP_BASE, "annotation": f"{GENCODE_BASE}/{rel}", "hg19": UCSC_HG19}


@dataclass
class Plan:
    """Every file of a fetch, by name.

    Attributes
    ----------
    rpkm, annotation : pitfall.download.Item
        The RNA-seq matrix and the GENCODE annotation.
    genome : pitfall.download.Item or None
        hg19 (gunzipped into ``hg19/hg19.fa``), when asked for.
    bigwigs : dict
        ``(epigenome, mark)`` -> its bigWig item.
    """

    rpkm: download.Item
    annotation: download.Item
    genome: download.Item | None
    bigwigs: dict[tuple[str, str], download.Item] = field(default_factory=dict)

    @property
    def shared(self) -> list[download.Item]:
        """The files every epigenome needs, in fetch order."""
        return [self.rpkm, self.annotation] + ([self.genome] if self.genome else [])

    def items(self) -> list[download.Item]:
        """Every file, shared ones first."""
        return self.shared + list(self.bigwigs.values())


def plan(
    epigenomes: Sequence[str],
    marks: Sequence[str],
    *,
    genome: bool,
    annotation: str,
    mirror: str | None,
) -> Plan:
    """Every file to fetch for these epigenomes and marks."""
    base = source_urls(mirror, annotation)
    ann_name = ANNOTATIONS[annotation].rsplit("/", 1)[1]
    bigwigs = {
        (eid, mark): download.Item(
            f"{base['roadmap']}/{BIGWIG_DIR}/{bigwig_file(eid, mark)}",
            f"bigwig/{bigwig_file(eid, mark)}",
            f"{eid} {mark}",
        )
        for eid in epigenomes
        for mark in marks
    }
    return Plan(
        rpkm=download.Item(
            f"{base['roadmap']}/{RPKM_PATH}", f"rna/{RPKM_FILE}", "RNA-seq RPKM matrix"
        ),
        annotation=download.Item(
            f"{base['annotation']}/{ann_name}",
            f"gencode/{ann_name}",
            "annotation",
            md5_list=f"{base['annotation']}/MD5SUMS",
        ),
        genome=download.Item(
            f"{base['hg19']}/hg19.fa.gz",
            "hg19/hg19.fa.gz",
            "genome",
            md5_list=f"{base['hg19']}/md5sum.txt",
            product="hg19/hg19.fa",
        )
        if genome
        else None,
        bigwigs=bigwigs,
    )


def parse_epigenomes(values: Sequence[str]) -> list[str]:
    """Epigenome ids from arguments (``E003``, ``e003,E116``), or ``["all"]``.

    Raises
    ------
    ValueError
        For a value that is not a Roadmap id.
    """
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    if any(x.lower() == "all" for x in out):
        return ["all"]
    ids = [x.upper() for x in out]
    bad = [x for x in ids if not re.fullmatch(r"E\d{3}", x)]
    if bad:
        raise ValueError(f"--epigenomes: {bad} are not Roadmap epigenome ids (E003, E116, ...)")
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------------------------
# The fetch


@dataclass
class FetchReport(download.DownloadReport):
    """A :class:`pitfall.download.DownloadReport`, and the manifest written (if any)."""

    manifest: Path | None = None
    epigenomes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


FETCH_HEADER = (
    "# Written by `pitfall fetch roadmap`: the expression task of Schreiber et al. (2020),\n"
    "# 2 kbp upstream of each TSS, autosomes, label = RPKM > 0.5.\n"
    "# chroms: the autosomes present in the fetched annotation (and genome).\n"
)


def fetch(
    dest: str | os.PathLike,
    epigenomes: Sequence[str],
    marks: Sequence[str] = CORE_MARKS,
    *,
    genome: bool = True,
    annotation: str = "gencode-v19",
    mirror: str | None = None,
    dry_run: bool = False,
    deep_verify: bool = True,
    retries: int = 2,
    progress: bool = True,
    timeout: float = 60.0,
    out: Callable[[str], None] = print,
) -> FetchReport:
    """Fetch the Roadmap expression-task inputs into ``dest`` and write its manifest.

    Parameters
    ----------
    dest
        The folder to download into (also the cache of later runs).
    epigenomes
        Roadmap ids (``E003``; comma-separated strings are split), or ``["all"]``: every
        epigenome of the RPKM matrix except E000.
    marks
        Histone marks (default the five core marks).
    genome
        Also fetch hg19 (gunzipped to ``hg19/hg19.fa``) and add ``[sequence]``.
    annotation
        ``gencode-v19`` or ``gencode-v10``.
    mirror
        One base URL serving the mirror layout (see the module doc); default
        ``$PITFALL_MIRROR``, else the public sites.
    dry_run
        List every file with its size (HTTP HEAD), the total and the free disk space;
        download nothing.
    deep_verify
        Check files already present against their recorded sha256 (else size only).
    retries
        Further attempts (resuming) after a network error or size / checksum mismatch.
    progress, timeout, out
        Progress bars; seconds per request; where messages go.

    Returns
    -------
    FetchReport
        ``ok`` is False when some file failed (each failure names its URL).
    """
    if annotation not in ANNOTATIONS:
        raise ValueError(f"--annotation {annotation!r} is not one of {sorted(ANNOTATIONS)}")
    if not marks:
        raise ValueError("--marks: at least one mark")
    from tqdm.auto import tqdm

    dest = Path(dest).expanduser().resolve()
    base = mirror_base(mirror)
    ids = parse_epigenomes(epigenomes)
    report = FetchReport(dest)
    known = builtin_epigenomes()
    shared = plan([], marks, genome=genome, annotation=annotation, mirror=base)

    def expand(table_ids: list[str] | None) -> list[str]:
        pool = table_ids if table_ids is not None else list(known)
        return [c for c in pool if c != REFERENCE_EPIGENOME] if ids == ["all"] else ids

    if dry_run:
        rpkm_local = dest / shared.rpkm.local
        table_ids = rpkm_columns(rpkm_local) if rpkm_local.is_file() else None
        if ids == ["all"] and table_ids is None:
            report.notes.append(
                f"'all' = the {len(known)} epigenomes of the built-in table (the RPKM matrix "
                "is not downloaded yet; its header decides on a real run)"
            )
        full = plan(expand(table_ids), marks, genome=genome, annotation=annotation, mirror=base)
        download.dry_run(full.items(), dest, report, out=out)
        return report

    fetcher = download.Fetcher(dest, report, deep_verify, retries, progress, timeout, out)
    with tqdm(
        total=len(shared.shared), unit="file", desc="fetch", disable=not progress_bars(progress)
    ) as bar:
        fetcher.fetch(shared.shared, bar)
        rpkm = dest / shared.rpkm.target
        have_rpkm = rpkm.is_file() and not report.failed(shared.rpkm)
        table_ids = rpkm_columns(rpkm) if have_rpkm else None
        wanted = expand(table_ids)
        if table_ids is not None:
            absent = [e for e in wanted if e not in table_ids]
            if absent:
                report.notes.append(
                    f"{absent} are not columns of the RPKM matrix (no RNA-seq): left out"
                )
                report.left_out += absent
                wanted = [e for e in wanted if e not in absent]
        elif ids == ["all"]:
            wanted = []  # 'all' needs the matrix's header
        bigwigs = plan(wanted, marks, genome=False, annotation=annotation, mirror=base).bigwigs
        bar.total = len(shared.shared) + len(bigwigs)
        bar.refresh()
        fetcher.fetch(list(bigwigs.values()), bar)

    complete = [e for e in wanted if not any(report.failed(bigwigs[e, m]) for m in marks)]
    report.left_out += [e for e in wanted if e not in complete]
    manifest = dest / "manifest.toml"
    shared_missing = [i.label for i in shared.shared if report.failed(i)]
    if shared_missing or not complete:
        manifest.unlink(missing_ok=True)
        why = (
            f"the {', '.join(shared_missing)} failed"
            if shared_missing
            else "no epigenome has all its bigWigs"
        )
        report.notes.append(f"no manifest written ({why}); run again to finish")
        return report
    fasta = shared.genome.target if shared.genome else None
    report.manifest = write_manifest(
        manifest,
        {e: known.get(e, (e, "")) for e in complete},
        annotation=shared.annotation.target,
        rpkm=shared.rpkm.target,
        chroms=_chroms(dest / shared.annotation.target, dest / fasta if fasta else None),
        marks=marks,
        bigwig_dir="bigwig",
        fasta=fasta,
        header=FETCH_HEADER,
    )
    report.epigenomes = complete
    if report.left_out:
        report.notes.append(
            f"manifest restricted to the {len(complete)} complete epigenomes; left out: "
            f"{', '.join(report.left_out)}"
        )
    return report


def _chroms(annotation: Path, fasta_path: Path | None) -> list[str]:
    """The autosomes present in the annotation (and the FASTA), in order."""
    col = pd.read_csv(annotation, sep="\t", comment="#", header=None, usecols=[0], dtype=str)[
        0
    ].unique()
    present = set(col)
    if fasta_path is not None:
        from pitfall.sources import fasta

        present &= set(fasta.chrom_sizes(fasta_path))
    return [c for c in AUTOSOMES if c in present]


# --------------------------------------------------------------------------------------------
# A fetched folder: is it complete, and the imputation cube over its signal

#: The manifest ``pitfall fetch roadmap`` writes into its folder.
FETCHED_MANIFEST = "manifest.toml"


def fetched_manifest(data: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """The manifest of a complete fetch with genome and marks in ``data``, or what is missing.

    Complete means: ``manifest.toml`` (written by :func:`fetch` only when every shared file
    and at least one epigenome's bigWigs are in place) with a ``[sequence]`` (the hg19
    FASTA) and ``[signal]`` (the consolidated marks), and every file it names present.

    Returns
    -------
    manifest : pathlib.Path or None
        ``data/manifest.toml`` when complete.
    missing : list of str
        What is missing, one phrase each (empty when complete).
    """
    from pitfall.manifest import ManifestError, load_manifest

    data = Path(data)
    path = data / FETCHED_MANIFEST
    if not path.is_file():
        wanted = [
            f"rna/{RPKM_FILE}",
            "hg19/hg19.fa",
            "bigwig/{EID}-{MARK}.pval.signal.bigwig",
        ]
        have = [w for w in wanted[:2] if (data / w).is_file()]
        if (data / "bigwig").is_dir() and any((data / "bigwig").glob("*.pval.signal.bigwig")):
            have.append(wanted[2])
        lacking = [w for w in wanted if w not in have]
        return None, [f"{path.name} (written by a finished `pitfall fetch roadmap`)"] + lacking
    try:
        m = load_manifest(path)
    except ManifestError as err:
        return None, [f"a readable {path.name} ({err})"]
    missing = []
    if m.fasta is None:
        missing.append("hg19/hg19.fa (the fetch ran with --no-genome)")
    if not m.marks:
        missing.append("the consolidated mark bigWigs (the manifest has no [signal])")
    missing += [f"{f} (named by {path.name})" for f in m.input_files() if not Path(f).is_file()]
    return (path if not missing else None), missing


#: The imputation cube's bins (bp): the ENCODE Imputation Challenge scored 25 bp bins; 200 bp keeps
#: a whole chromosome's cube small and still resolves promoters.
IMPUTATION_BIN = 200


def imputation_manifest(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    chroms: Sequence[str] | None = None,
    bin_size: int = IMPUTATION_BIN,
) -> Path:
    """Write the manifest of an imputation cube from a fetched folder's consolidated signal.

    Loci: bins of ``bin_size`` tiling ``chroms`` (their sizes from the fetched genome, else
    from the first bigWig's header). Signal: every epigenome's marks as the fetch's manifest
    lists them (each mark's arcsinh mean over the bin). Label (the cube needs one; the
    imputation task reads the signal alone): 1 where the bin holds the TSS of a gene of the
    fetched annotation expressed in that epigenome (RPKM > :data:`THRESHOLD`), else 0; one
    BED of those TSSs per epigenome, written next to the manifest.

    Parameters
    ----------
    data
        A folder :func:`fetch` completed (:func:`fetched_manifest`; the genome is optional
        here).
    out_dir
        Where ``manifest.toml``, ``chrom.sizes`` and ``tss/{EID}.bed`` go.
    chroms
        Chromosomes to tile (default: those of the fetch's manifest).
    bin_size
        Bin length in bp.

    Returns
    -------
    pathlib.Path
        ``out_dir/manifest.toml``.

    Raises
    ------
    FileNotFoundError
        When ``data`` holds no fetch manifest with marks.
    ValueError
        For a chromosome the genome (or bigWig) lacks.
    """
    from pitfall.manifest import load_manifest
    from pitfall.sources import annotation, labels

    data, out = Path(data).resolve(), Path(out_dir).resolve()
    path = data / FETCHED_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; run `pitfall fetch roadmap --dest {data}` (with the marks to "
            "impute) first"
        )
    m = load_manifest(path)
    if not m.marks or m.table is None:
        raise FileNotFoundError(
            f"{path}: no [signal] or no expression table; it is not what `pitfall fetch "
            "roadmap` writes: fetch again into an empty folder"
        )
    if m.fasta is not None:
        from pitfall.sources import fasta

        sizes = fasta.chrom_sizes(m.fasta)
    else:
        import pyBigWig

        first = next(iter(m.cell_types.values())).signal[m.marks[0]]
        bw = pyBigWig.open(str(first))
        sizes = dict(bw.chroms())
        bw.close()
    chroms = list(chroms) if chroms else list(m.chroms or AUTOSOMES)
    lacking = [c for c in chroms if c not in sizes]
    if lacking:
        raise ValueError(
            f"chromosomes {lacking} are not in the fetched genome ({', '.join(sizes)}); give "
            "chromosomes it has"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tss").mkdir(exist_ok=True)
    (out / "chrom.sizes").write_text("".join(f"{c}\t{sizes[c]}\n" for c in chroms))
    genes = annotation.read_genes(m.loci_path)
    genes = genes[genes["chrom"].isin(chroms)]
    tss = np.where(genes["strand"] == "-", genes["end"] - 1, genes["start"]).astype(np.int64)
    expr = labels.read_expression_table(m.table)
    rows = expr.index.get_indexer(annotation.strip_version(genes["gene_id"]).to_numpy())
    cell_types: dict[str, dict] = {}
    for eid, spec in m.cell_types.items():
        value = np.where(rows >= 0, expr[eid].to_numpy()[rows], np.nan)
        on = value > THRESHOLD
        order = np.lexsort((tss[on], genes["chrom"].to_numpy()[on]))
        chrom_on, tss_on = genes["chrom"].to_numpy()[on][order], tss[on][order]
        # A 1-bp interval at each TSS: read as a peak, its midpoint (the TSS) labels its bin.
        (out / "tss" / f"{eid}.bed").write_text(
            "".join(f"{c}\t{t}\t{t + 1}\n" for c, t in zip(chrom_on, tss_on, strict=True))
        )
        cell_types[eid] = {
            "name": spec.name,
            "group": spec.group,
            "signal": {mk: str(f) for mk, f in spec.signal.items()},
            "target": f"tss/{eid}.bed",
        }
    raw = {
        "assembly": m.assembly,
        "chroms": chroms,
        "loci": {"bins": "chrom.sizes", "bin_size": int(bin_size)},
        "signal": {"marks": list(m.marks)},
        "target": {"kind": "peaks"},
        "cell_types": cell_types,
    }
    header = (
        f"# Imputation cube over the consolidated signal fetched into {data}:\n"
        f"# {bin_size} bp bins over {', '.join(chroms)}; label = the bin holds the TSS of a\n"
        f"# gene expressed (RPKM > {THRESHOLD}) in the epigenome (tss/{{EID}}.bed).\n"
    )
    return write_manifest_file(raw, out / "manifest.toml", header)


# --------------------------------------------------------------------------------------------
# A mirror of generated content


def write_mirror(
    compendium: SynthCompendium, root: str | os.PathLike, *, annotation: str = "gencode-v19"
) -> Path:
    """Lay a synthetic compendium out as a mirror that :func:`fetch` reads (``mirror=URL``).

    Every file gets its public name and format (module doc): the RPKM matrix with an
    ``E000`` column first (the mean of the others: Roadmap's reference is not a cell type)
    and the stray tab at the end of each data row; the GTF as GENCODE's; the FASTA gzipped
    as UCSC's ``hg19.fa.gz`` with its ``md5sum.txt``, the annotation's ``MD5SUMS``; each
    (cell type, mark) bigWig as ``{EID}-{MARK}.pval.signal.bigwig``.

    Parameters
    ----------
    compendium
        What :func:`pitfall.synth.synthesize` wrote (its cell types are Roadmap ids).
    root
        The folder to serve (e.g. ``python -m http.server -d ROOT``).
    annotation
        Which GENCODE release's path the GTF takes.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    import hashlib
    import shutil

    root = Path(root)

    def put(rel: str, data: bytes) -> Path:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def md5(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    with gzip.open(compendium.rpkm, "rt") as fh:
        lines = fh.read().splitlines()
    head = lines[0].rstrip("\t").split("\t")
    rows = [head[0] + "\t" + "\t".join([REFERENCE_EPIGENOME, *head[1:]])]
    for line in lines[1:]:
        fields = line.rstrip("\t").split("\t")
        reference = np.mean([float(v) for v in fields[1:]])
        rows.append("\t".join([fields[0], f"{reference:.3f}", *fields[1:]]) + "\t")
    put(RPKM_PATH, gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0))
    gtf = compendium.gtf.read_bytes()
    ann = ANNOTATIONS[annotation]
    put(ann, gtf)
    put(ann.rsplit("/", 1)[0] + "/MD5SUMS", f"{md5(gtf)}  {ann.rsplit('/', 1)[1]}\n".encode())
    genome = gzip.compress(compendium.fasta.read_bytes(), mtime=0)
    put("hg19/hg19.fa.gz", genome)
    put("hg19/md5sum.txt", f"{md5(genome)}  hg19.fa.gz\n".encode())
    for eid, by_mark in compendium.bigwigs.items():
        for mark, src in by_mark.items():
            target = root / BIGWIG_DIR / bigwig_file(eid, mark)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    return root
