"""TAD boundaries on 40 kb bins: the paper's compendium (Dixon et al. 2015) and a substitute.

Two data sets, one rule: a 40 kb bin of chr1-22 is a boundary in a cell type when one of its
domains starts or ends in it (:func:`pitfall.sources.labels.read_domains` and the
featurizer's rule).

``dixon2015``: the paper's seven lines (``pitfall fetch tads --compendium dixon2015``)
    Schreiber et al. 2020 predicted the TAD boundaries of seven cell lines: H1 and four
    H1-derived lineages (mesendoderm, mesenchymal stem cells, neural progenitor cells,
    trophoblast-like cells) of Dixon et al. 2015 (Nature 518:331, GEO GSE52457), IMR90 and
    GM12878. GEO holds the Hi-C reads and matrices, not the domain calls. The one public
    file that holds domain calls of all seven in hg19, called by one method (Dixon's
    directionality index and hidden Markov model at 40 kb), is the hg19 TAD archive of the
    3D Genome Browser (Yue lab), :data:`TADS_ARCHIVE_URL`; its lists for IMR90 and GM12878
    are that pipeline run on Rao et al. 2014's Hi-C (``*_Lieberman``), not Dixon's own
    calls. :func:`fetch` downloads the archive and UCSC's hg19 chromosome sizes, extracts
    the seven lists and writes the manifest. Cell type ids are the lines' Roadmap
    epigenome ids (:data:`DIXON2015`), so the cube pairs with Roadmap's signal.

``shared``: the substitute in a data folder laid out as ``../shared/data``
    Dixon et al. 2012 hESC and IMR90, Rao et al. 2014 Arrowhead GM12878, HUVEC, K562 and
    NHEK (:data:`TAD_FILES`, from the public GitHub repository akdemirlab/HiCPlotter,
    ``data/``); :func:`manifest_from_folder`.

What the layout of ``dixon2015`` rests on (documentation read, nothing downloaded): the
archive's address (``downloads/hg19.TADs.zip`` of the 3D Genome Browser, formerly under
``promoter.bx.psu.edu/hi-c/``) and the member ``H1-ESC_Dixon2015-raw_TADs.txt`` (tab
separated ``chrom start end``, no header, ``chr`` names) are confirmed by several public
pipelines that download and read them; so is the ``<sample>-raw_TADs.txt`` pattern of the
other members (``K562_Lieberman-raw_TADs.txt``, ``GM12878_Lieberman-raw_TADs``). The sample
names ``H1_MES_Dixon2015``, ``H1_MSC_Dixon2015``, ``H1_NPC_Dixon2015``,
``H1_TRO_Dixon2015``, ``IMR90_Lieberman`` and ``GM12878_Lieberman`` are confirmed from a
public tool's list of the browser's samples; the member names of the other six are that
pattern applied to them (not seen written out): :data:`DIXON2015` lists them. Some copies of
the archive spell ``Dixon_2015``, and some put the members in a folder; members are matched
by file name, with either spelling; a list with bare chromosome names (``1``) is
extracted with UCSC's (``chr1``), the names of the bins. The archive publishes no checksums: the sha256 of what
was downloaded is recorded (``checksums.tsv``), as for every fetch.

Local layout of a fetch under ``DEST``::

    downloads/hg19.TADs.zip                   the archive, as downloaded
    hg19/hg19.chrom.sizes                     UCSC's
    tads/dixon2015/{member}                   the seven domain lists, extracted
    checksums.tsv                             path, bytes, sha256, url of every download
    manifest.toml                             40 kb bins of the autosomes in the sizes file

Mirror layout (``mirror=URL`` or ``$PITFALL_MIRROR``, as ``pitfall fetch roadmap``)::

    {mirror}/3dgenome/downloads/hg19.TADs.zip
    {mirror}/hg19/hg19.chrom.sizes

i.e. the 3D Genome Browser's host replaced by ``3dgenome/`` and UCSC's
``goldenPath/hg19/bigZips/`` by ``hg19/``.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pitfall import download
from pitfall._atomic import atomic_write_bytes
from pitfall._logs import progress_bars
from pitfall.datasets._folder import write_manifest_file
from pitfall.datasets.ctcf import bins_manifest
from pitfall.datasets.roadmap import UCSC_HG19, mirror_base
from pitfall.genome import AUTOSOMES

__all__ = [
    "BIN_SIZE",
    "CHROM_SIZES",
    "COMPENDIA",
    "DIXON2015",
    "DOMAIN_DIR",
    "FetchReport",
    "TADS_ARCHIVE",
    "TADS_ARCHIVE_URL",
    "TAD_FILES",
    "TadLine",
    "archive_member",
    "dixon2015_manifest",
    "extract_domain_lists",
    "fetch",
    "manifest_from_folder",
    "plan",
]

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


@dataclass(frozen=True)
class TadLine:
    """One cell line of a TAD compendium.

    Attributes
    ----------
    name, group
        Display name and group (Roadmap's, where the line is a Roadmap epigenome).
    member
        The domain list's file name in the archive.
    study
        Whose Hi-C the domains were called on.
    """

    name: str
    group: str
    member: str
    study: str


#: The paper's seven TAD lines, by Roadmap epigenome id (Schreiber et al. 2020; Dixon et al.
#: 2015). Members: see the module doc for which names are confirmed.
DIXON2015: dict[str, TadLine] = {
    "E003": TadLine("H1", "ES", "H1-ESC_Dixon2015-raw_TADs.txt", "Dixon 2015"),
    "E004": TadLine(
        "H1 BMP4 Derived Mesendoderm", "ES-derived", "H1-MES_Dixon2015-raw_TADs.txt", "Dixon 2015"
    ),
    "E005": TadLine(
        "H1 BMP4 Derived Trophoblast", "ES-derived", "H1-TRO_Dixon2015-raw_TADs.txt", "Dixon 2015"
    ),
    "E006": TadLine(
        "H1 Derived Mesenchymal Stem Cells",
        "ES-derived",
        "H1-MSC_Dixon2015-raw_TADs.txt",
        "Dixon 2015",
    ),
    "E007": TadLine(
        "H1 Derived Neuronal Progenitor",
        "ES-derived",
        "H1-NPC_Dixon2015-raw_TADs.txt",
        "Dixon 2015",
    ),
    "E017": TadLine("IMR90", "IMR90", "IMR90_Lieberman-raw_TADs.txt", "Rao 2014"),
    "E116": TadLine("GM12878", "blood", "GM12878_Lieberman-raw_TADs.txt", "Rao 2014"),
}
#: TAD compendia ``pitfall fetch tads --compendium`` knows: name -> its lines.
COMPENDIA: dict[str, dict[str, TadLine]] = {"dixon2015": DIXON2015}

THREEDGENOME_BASE = "http://3dgenome.fsm.northwestern.edu"
#: The archive, relative to the 3D Genome Browser's host (and to a mirror's ``3dgenome/``).
TADS_ARCHIVE = "downloads/hg19.TADs.zip"
TADS_ARCHIVE_URL = f"{THREEDGENOME_BASE}/{TADS_ARCHIVE}"
#: UCSC's chromosome sizes, under ``DEST``.
CHROM_SIZES = "hg19/hg19.chrom.sizes"
#: Where the extracted lists go, under ``DEST``: ``tads/{compendium}/{member}``.
DOMAIN_DIR = "tads"


def manifest_from_folder(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, bin_size: int = BIN_SIZE
) -> Path:
    """Write ``out_dir/manifest.toml``: 40 kb bins of chr1-22, the ``shared`` domain lists.

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


# --------------------------------------------------------------------------------------------
# The paper's compendium


def plan(mirror: str | None) -> dict[str, download.Item]:
    """The files to download: ``archive`` (the 3D Genome Browser's hg19 TADs) and
    ``sizes`` (UCSC's hg19 chromosome sizes), from ``mirror`` or the public sites."""
    archive = f"{mirror}/3dgenome/{TADS_ARCHIVE}" if mirror else TADS_ARCHIVE_URL
    sizes = f"{mirror}/hg19/hg19.chrom.sizes" if mirror else f"{UCSC_HG19}/hg19.chrom.sizes"
    return {
        "archive": download.Item(archive, TADS_ARCHIVE, "3D Genome Browser hg19 TAD archive"),
        "sizes": download.Item(sizes, CHROM_SIZES, "hg19 chromosome sizes"),
    }


def _normal(name: str) -> str:
    """A member's file name as compared: lower case, ``Dixon_2015`` spelt ``Dixon2015``."""
    return PurePosixPath(name).name.lower().replace("dixon_2015", "dixon2015")


def archive_member(names: list[str], member: str) -> str | None:
    """The archive entry (of ``names``) holding ``member``, matched by file name in any
    folder, case and the ``Dixon_2015`` spelling aside; None when absent."""
    want = _normal(member)
    hits = [n for n in names if not n.endswith("/") and _normal(n) == want]
    return hits[0] if hits else None


def extract_domain_lists(
    archive: str | os.PathLike, dest: str | os.PathLike, compendium: str = "dixon2015"
) -> tuple[dict[str, Path], list[str]]:
    """Extract a compendium's domain lists from the archive into ``dest/tads/{compendium}/``.

    Parameters
    ----------
    archive
        The downloaded zip.
    dest
        The fetch folder.
    compendium
        A key of :data:`COMPENDIA`.

    Returns
    -------
    extracted : dict
        Cell type id -> its list (``dest/tads/{compendium}/{member}``), for the members found.
    problems : list of str
        One sentence per member not found, naming the archive and the member.

    Raises
    ------
    download.FetchError
        When the archive is not a zip file (a failed or truncated download).
    """
    lines = COMPENDIA[compendium]
    out_dir = Path(dest) / DOMAIN_DIR / compendium
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise download.FetchError(
            f"{archive}: not a zip archive ({err}); delete it and fetch again"
        ) from None
    extracted: dict[str, Path] = {}
    problems: list[str] = []
    with zf:
        names = zf.namelist()
        for ct, line in lines.items():
            entry = archive_member(names, line.member)
            if entry is None:
                problems.append(
                    f"{archive}: no member {line.member} ({ct}, {line.name}); the archive "
                    f"holds {len(names)} entries, e.g. {', '.join(names[:3])}"
                )
                continue
            extracted[ct] = atomic_write_bytes(out_dir / line.member, _ucsc_names(zf.read(entry)))
    return extracted, problems


#: A line whose chromosome has no ``chr``.
_BARE = re.compile(rb"^(\d+|X|Y|M|MT)\t")


def _ucsc_names(data: bytes) -> bytes:
    """A domain list with UCSC chromosome names: ``chr`` put before bare names (``1``,
    ``X``), which some of the browser's lists use; a list that has them is unchanged."""
    lines = data.splitlines(keepends=True)
    if not any(_BARE.match(ln) for ln in lines):
        return data
    return b"".join(b"chr" + ln if _BARE.match(ln) else ln for ln in lines)


def _autosomes_in(sizes: Path) -> list[str]:
    """The autosomes named in a chrom.sizes file, in order."""
    names = {ln.split()[0] for ln in sizes.read_text().splitlines() if ln.strip() and ln[0] != "#"}
    return [c for c in AUTOSOMES if c in names]


FETCH_HEADER = (
    "# Written by `pitfall fetch tads --compendium {compendium}`: TAD boundaries on {bin} bp\n"
    "# bins (a bin is 1 where a domain starts or ends), the paper's seven TAD lines.\n"
    "# chroms: the autosomes of the fetched chromosome sizes.\n"
)


def dixon2015_manifest(
    dest: str | os.PathLike,
    cell_types: list[str] | None = None,
    *,
    compendium: str = "dixon2015",
    bin_size: int = BIN_SIZE,
) -> Path:
    """Write ``dest/manifest.toml`` for a fetched TAD compendium (relative paths).

    Parameters
    ----------
    dest
        A fetch folder (:func:`fetch`'s layout: the sizes file and the extracted lists).
    cell_types
        The lines to include (default all of the compendium's), in the compendium's order.
    compendium, bin_size
        Which compendium; bin length in bp.

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    dest = Path(dest)
    lines = COMPENDIA[compendium]
    wanted = [ct for ct in lines if cell_types is None or ct in cell_types]
    sizes = dest / CHROM_SIZES
    files = [sizes] + [dest / DOMAIN_DIR / compendium / lines[ct].member for ct in wanted]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing; run `pitfall fetch tads --compendium {compendium} --dest {dest}`"
            )
    return write_manifest_file(
        {
            "assembly": "hg19",
            "chroms": _autosomes_in(sizes),
            "loci": {"bins": CHROM_SIZES, "bin_size": bin_size},
            "target": {"kind": "domains"},
            "cell_types": {
                ct: {
                    "name": lines[ct].name,
                    "group": lines[ct].group,
                    "target": f"{DOMAIN_DIR}/{compendium}/{lines[ct].member}",
                }
                for ct in wanted
            },
        },
        dest / "manifest.toml",
        FETCH_HEADER.format(compendium=compendium, bin=bin_size),
    )


@dataclass
class FetchReport(download.DownloadReport):
    """A :class:`pitfall.download.DownloadReport`, the lists extracted and the manifest."""

    manifest: Path | None = None
    cell_types: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def fetch(
    dest: str | os.PathLike,
    compendium: str = "dixon2015",
    *,
    mirror: str | None = None,
    dry_run: bool = False,
    deep_verify: bool = True,
    retries: int = 2,
    progress: bool = True,
    timeout: float = 60.0,
    out: Callable[[str], None] = print,
) -> FetchReport:
    """Fetch a TAD compendium into ``dest`` and write its manifest (``pitfall fetch tads``).

    Parameters
    ----------
    dest
        The folder to download into (also the cache of later runs).
    compendium
        A key of :data:`COMPENDIA` (``dixon2015``: the paper's seven lines).
    mirror
        One base URL serving the mirror layout (module doc); default ``$PITFALL_MIRROR``,
        else the public sites.
    dry_run
        List the files with their sizes (HTTP HEAD) and the free disk space; download
        nothing.
    deep_verify, retries, progress, timeout, out
        As :func:`pitfall.datasets.roadmap.fetch`.

    Returns
    -------
    FetchReport
        ``ok`` is False when a download failed or a line's list is not in the archive (each
        failure names its URL or member). The manifest names only the lines whose lists
        were extracted, and is not written (an older one is removed) when the sizes or the
        archive are missing or no list was found.
    """
    if compendium not in COMPENDIA:
        raise ValueError(
            f"--compendium {compendium!r}: not one of {', '.join(COMPENDIA)} (the paper's "
            "seven lines are dixon2015)"
        )
    from tqdm.auto import tqdm

    dest = Path(dest).expanduser().resolve()
    items = plan(mirror_base(mirror))
    report = FetchReport(dest)
    if dry_run:
        download.dry_run(list(items.values()), dest, report, out=out)
        return report
    fetcher = download.Fetcher(dest, report, deep_verify, retries, progress, timeout, out)
    with tqdm(
        total=len(items), unit="file", desc="fetch", disable=not progress_bars(progress)
    ) as bar:
        fetcher.fetch(list(items.values()), bar)
    manifest = dest / "manifest.toml"
    missing = [i.label for i in items.values() if report.failed(i)]
    extracted: dict[str, Path] = {}
    if not missing:
        try:
            extracted, problems = extract_domain_lists(dest / TADS_ARCHIVE, dest, compendium)
        except download.FetchError as err:
            report.failures.append(download.Failure(items["archive"], str(err)))
            problems = []
        for problem in problems:
            report.failures.append(download.Failure(items["archive"], problem))
    lines = COMPENDIA[compendium]
    report.left_out = [ct for ct in lines if ct not in extracted]
    if missing or not extracted:
        manifest.unlink(missing_ok=True)
        why = f"the {', '.join(missing)} failed" if missing else "no domain list was extracted"
        report.notes.append(f"no manifest written ({why}); run again to finish")
        return report
    report.cell_types = list(extracted)
    report.manifest = dixon2015_manifest(dest, report.cell_types, compendium=compendium)
    if report.left_out:
        report.notes.append(
            f"manifest restricted to the {len(extracted)} lines found; left out: "
            + ", ".join(f"{ct} ({lines[ct].name})" for ct in report.left_out)
        )
    return report
