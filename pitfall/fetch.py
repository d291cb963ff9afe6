"""Download the Roadmap inputs of the paper's expression task and write their manifest.

``pitfall fetch roadmap --dest DIR --epigenomes all`` fetches, with :mod:`pooch`:

- Roadmap's consolidated RNA-seq RPKM matrix (protein-coding genes x 57 epigenomes);
- the consolidated MACS2 -log10(p-value) bigWig of each (epigenome, mark);
- the GENCODE gene annotation (v19 by default, or v10, the one Roadmap quantified with);
- the hg19 genome (``--genome``, the default), gunzipped to a plain ``hg19/hg19.fa`` so that
  pyfaidx indexes it (UCSC ships plain gzip, not bgzip, and pyfaidx reads bgzip only with
  Biopython), and the ``.gz`` removed once the FASTA is complete;

then writes ``DIR/manifest.toml`` for the expression task as Schreiber et al. (2020) set it up:
a 2 kbp window upstream of each TSS, autosomes chr1-chr22, label = RPKM > 0.5, one
``[cell_types.EID]`` per epigenome with its bigWig per mark. ``chroms`` lists only the
autosomes present in the fetched annotation (and in the FASTA, when fetched), so a mirror
holding a few chromosomes gives a manifest ``pitfall build`` accepts unchanged.

Local layout under ``DIR``::

    rna/57epigenomes.RPKM.pc.gz
    bigwig/{EID}-{MARK}.pval.signal.bigwig
    gencode/gencode.v19.annotation.gtf.gz        (or v10)
    hg19/hg19.fa                                 (--genome)
    checksums.tsv                                path, bytes, sha256, url of every file
    manifest.toml

Mirror layout: ``--mirror URL`` (or the environment variable ``PITFALL_MIRROR``) replaces
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
supported (serve a local copy with ``python -m http.server``).

Downloads and their checks:

- Resume: a custom pooch downloader (:class:`ResumableDownloader`) writes ``<file>.part``
  and, when one is there, asks for the rest with an HTTP ``Range`` header; a server that
  ignores the range (200 instead of 206) restarts the file. An interrupted transfer keeps its
  ``.part``; the next run (or pooch's retry, ``--retries``) continues it.
- Size: the bytes received must add up to the size the server announced (Content-Length or
  Content-Range); otherwise the partial file is removed and the error names the URL and the
  expected size.
- Checksums from the source: Roadmap publishes none; GENCODE's ``MD5SUMS`` and UCSC's
  ``md5sum.txt`` are read when present and passed to pooch as the known hash (a mismatch
  removes the file and names the URL and the expected MD5).
- Recorded checksums: the sha256 (computed while downloading) and size of every finished file
  go to ``DIR/checksums.tsv``. A later run verifies each file present against its record
  (``--no-verify``: size only) and skips it, so a second run sends no request; a file that
  fails its record is removed, reported (URL, expected size / sha256) and fetched again,
  and must then match the record (the record pins the data: delete its line to accept a
  changed upstream file).

Partial results: when some downloads fail the run goes on, prints a summary of the failures
and returns non-zero. The manifest never names a missing file: it is written for the
epigenomes whose bigWigs are all complete (the others are listed as left out), and not
written at all (any older ``manifest.toml`` is removed) when a shared file (RPKM matrix,
annotation, or the genome when asked for) is missing or no epigenome is complete.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from pitfall.cube import human_bytes

#: The five core histone marks of the Roadmap consolidated epigenomes.
CORE_MARKS = ("H3K4me3", "H3K4me1", "H3K27me3", "H3K36me3", "H3K9me3")

ROADMAP_BASE = "https://egg2.wustl.edu"
GENCODE_BASE = "https://ftp.ebi.ac.uk/pub/databases"
UCSC_HG19 = "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips"

RPKM_PATH = "roadmap/data/byDataType/rna/expression/57epigenomes.RPKM.pc.gz"
BIGWIG_DIR = "roadmap/data/byFileType/signal/consolidated/macs2signal/pval"
ANNOTATIONS = {
    "gencode-v19": "gencode/Gencode_human/release_19/gencode.v19.annotation.gtf.gz",
    "gencode-v10": "gencode/Gencode_human/release_10/gencode.v10.annotation.gtf.gz",
}
MIRROR_ENV = "PITFALL_MIRROR"

#: The paper's expression task: 2 kbp upstream of each TSS, autosomes, RPKM > 0.5.
UPSTREAM, DOWNSTREAM, THRESHOLD = 2000, 0, 0.5
AUTOSOMES = tuple(f"chr{i}" for i in range(1, 23))
#: Rough gzip ratio of a FASTA, for the disk-space estimate of a dry run.
FASTA_GZIP_RATIO = 3.4
CHUNK = 1 << 20


class FetchError(Exception):
    """A download that failed for good (HTTP error, size or checksum mismatch).

    Deliberately not a ``ValueError`` / ``requests`` exception, so pooch does not retry it.
    """


class SizeMismatch(ValueError):
    """Fewer or more bytes than announced (a ``ValueError``: pooch retries it)."""


# --------------------------------------------------------------------------------------------
# What to fetch


@dataclass
class Item:
    """One file to fetch: its URL, where it goes under DEST, what it is for."""

    url: str
    local: str  # path under DEST of the download
    what: str  # "rpkm" | "annotation" | "genome" | "bigwig"
    epigenome: str | None = None
    mark: str | None = None
    md5_list: str | None = None  # URL of a checksum list published by the source
    product: str | None = None  # path under DEST of the file made from it (gunzipped FASTA)

    @property
    def target(self) -> str:
        """The file that must end up in DEST."""
        return self.product or self.local

    @property
    def label(self) -> str:
        if self.what == "bigwig":
            return f"{self.epigenome} {self.mark}"
        return {"rpkm": "RNA-seq RPKM matrix", "annotation": "annotation", "genome": "genome"}[
            self.what
        ]


def mirror_base(mirror: str | None) -> str | None:
    """The mirror in use: ``mirror``, else ``$PITFALL_MIRROR``, else None (public sources)."""
    base = mirror or os.environ.get(MIRROR_ENV) or None
    return base.rstrip("/") if base else None


def source_urls(mirror: str | None, annotation: str = "gencode-v19") -> dict[str, str]:
    """Base URLs (``roadmap``, ``annotation`` dir, ``hg19`` dir) for a mirror or the public sites."""
    rel = ANNOTATIONS[annotation].rsplit("/", 1)[0]
    if mirror:
        return {"roadmap": mirror, "annotation": f"{mirror}/{rel}", "hg19": f"{mirror}/hg19"}
    return {
        "roadmap": ROADMAP_BASE,
        "annotation": f"{GENCODE_BASE}/{rel}",
        "hg19": UCSC_HG19,
    }


def plan(
    epigenomes: Sequence[str],
    marks: Sequence[str],
    *,
    genome: bool,
    annotation: str,
    mirror: str | None,
) -> list[Item]:
    """Every file to fetch, shared files first."""
    base = source_urls(mirror, annotation)
    ann_name = ANNOTATIONS[annotation].rsplit("/", 1)[1]
    items = [
        Item(f"{base['roadmap']}/{RPKM_PATH}", "rna/57epigenomes.RPKM.pc.gz", "rpkm"),
        Item(
            f"{base['annotation']}/{ann_name}",
            f"gencode/{ann_name}",
            "annotation",
            md5_list=f"{base['annotation']}/MD5SUMS",
        ),
    ]
    if genome:
        items.append(
            Item(
                f"{base['hg19']}/hg19.fa.gz",
                "hg19/hg19.fa.gz",
                "genome",
                md5_list=f"{base['hg19']}/md5sum.txt",
                product="hg19/hg19.fa",
            )
        )
    for eid in epigenomes:
        for mark in marks:
            name = f"{eid}-{mark}.pval.signal.bigwig"
            items.append(
                Item(
                    f"{base['roadmap']}/{BIGWIG_DIR}/{name}", f"bigwig/{name}", "bigwig", eid, mark
                )
            )
    return items


def builtin_epigenomes() -> dict[str, tuple[str, str]]:
    """Roadmap epigenomes with RNA-seq (E000 excluded): id -> (name, group)."""
    from pitfall.synth import CELL_TYPES

    return {eid: (name, group) for eid, name, group in CELL_TYPES}


def rpkm_columns(path: Path) -> list[str]:
    """Epigenome ids in the header of the RPKM matrix (its first field is the gene column)."""
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    return [c.strip() for c in header[1:] if c.strip()]


# --------------------------------------------------------------------------------------------
# Recorded checksums


@dataclass
class Record:
    bytes: int
    sha256: str
    url: str


class Checksums:
    """``DEST/checksums.tsv``: path (under DEST), bytes, sha256 and URL of every finished file."""

    HEADER = "path\tbytes\tsha256\turl\n"

    def __init__(self, dest: Path) -> None:
        self.path = dest / "checksums.tsv"
        self.rows: dict[str, Record] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines()[1:]:
                parts = line.split("\t")
                if len(parts) == 4 and parts[1].isdigit():
                    self.rows[parts[0]] = Record(int(parts[1]), parts[2], parts[3])

    def get(self, path: str) -> Record | None:
        return self.rows.get(path)

    def set(self, path: str, rec: Record | None) -> None:
        if rec is None:
            self.rows.pop(path, None)
        else:
            self.rows[path] = rec
        tmp = self.path.with_name(self.path.name + ".tmp")
        lines = [f"{p}\t{r.bytes}\t{r.sha256}\t{r.url}\n" for p, r in sorted(self.rows.items())]
        tmp.write_text(self.HEADER + "".join(lines))
        os.replace(tmp, self.path)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, rec: Record, deep: bool = True) -> str | None:
    """None when ``path`` matches its record, else what is wrong (naming URL and expectation)."""
    size = path.stat().st_size
    if size != rec.bytes:
        return (
            f"{path}: size {size:,} bytes differs from the {rec.bytes:,} recorded in "
            f"checksums.tsv for {rec.url}"
        )
    if deep:
        got = sha256_of(path)
        if got != rec.sha256:
            return (
                f"{path}: sha256 {got} differs from the {rec.sha256} recorded in checksums.tsv "
                f"for {rec.url}"
            )
    return None


# --------------------------------------------------------------------------------------------
# Downloading


class ResumableDownloader:
    """A pooch downloader that resumes ``<file>.part`` with an HTTP Range request.

    pooch calls it with a temporary output name; the bytes go to ``part`` (next to the final
    file), which is renamed to pooch's temporary file once complete, so pooch can check the
    known hash and move it into place. The sha256 and size of the whole file are kept in
    ``sha256`` and ``size`` (hashed while streaming; a resumed part is hashed first).
    """

    def __init__(
        self,
        part: Path,
        *,
        label: str = "",
        progress: bool = True,
        timeout: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        self.part = part
        self.label = label
        self.progress = progress
        self.timeout = timeout
        self.session = session or requests.Session()
        self.sha256: str | None = None
        self.size: int | None = None
        self.resumed_from = 0

    def _get(self, url: str, offset: int) -> requests.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.session.get(url, headers=headers, stream=True, timeout=self.timeout)

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False) -> None:
        from tqdm.auto import tqdm

        self.part.parent.mkdir(parents=True, exist_ok=True)
        offset = self.part.stat().st_size if self.part.exists() else 0
        r = self._get(url, offset)
        if r.status_code == 416 and offset:
            total = _content_range_total(r.headers.get("Content-Range", ""))
            r.close()
            if total is None or total != offset:  # a stale part: start again
                self.part.unlink()
                offset = 0
                r = self._get(url, 0)
        if r.status_code == 416:
            r.close()  # the part is exactly the whole file
            mode, total = "ab", offset
            chunks = iter(())
        else:
            if r.status_code >= 400:
                r.close()
                raise FetchError(f"{url}: HTTP {r.status_code} {r.reason}")
            if r.status_code == 206:
                start = _content_range_start(r.headers.get("Content-Range", ""))
                total = _content_range_total(r.headers.get("Content-Range", ""))
                if start != offset:
                    r.close()
                    raise SizeMismatch(f"{url}: asked for bytes from {offset}, got from {start}")
                mode = "ab"
            else:  # 200: the whole file (the server ignored or was not asked for a range)
                offset = 0
                mode = "wb"
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            chunks = _raw_chunks(r)
        self.resumed_from = offset
        h = hashlib.sha256()
        if offset:
            with open(self.part, "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    h.update(block)
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=self.label or url.rsplit("/", 1)[-1],
            leave=False,
            position=1,
            disable=not self.progress,
        )
        try:
            with open(self.part, mode) as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
            r.close()
        size = self.part.stat().st_size
        if total is not None and size != total:
            self.part.unlink()
            raise SizeMismatch(
                f"{url}: expected {total:,} bytes (as announced by the server), got {size:,}; "
                "removed the partial file"
            )
        self.sha256, self.size = h.hexdigest(), size
        os.replace(self.part, output_file)


def _raw_chunks(r: requests.Response):
    """The body as sent (no gzip decoding: a ``.gz`` stays as served), in ``CHUNK`` blocks."""
    import urllib3

    try:
        while block := r.raw.read(CHUNK, decode_content=False):
            yield block
    except urllib3.exceptions.HTTPError as err:  # e.g. IncompleteRead: a dropped connection
        raise requests.exceptions.ConnectionError(err) from err


def _content_range_total(value: str) -> int | None:
    m = re.search(r"/(\d+)\s*$", value)
    return int(m.group(1)) if m else None


def _content_range_start(value: str) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", value)
    return int(m.group(1)) if m else None


def head_size(url: str, session: requests.Session, timeout: float = 30.0) -> tuple[int | None, str]:
    """Size from an HTTP HEAD (Content-Length) and a status note ('' when fine)."""
    try:
        r = session.head(url, allow_redirects=True, timeout=timeout)
    except requests.RequestException as err:
        return None, f"unreachable ({type(err).__name__})"
    if r.status_code >= 400:
        return None, f"HTTP {r.status_code} {r.reason}"
    length = r.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), ""


def source_md5(item: Item, session: requests.Session, timeout: float = 30.0) -> str | None:
    """The MD5 the source publishes for ``item`` (GENCODE MD5SUMS, UCSC md5sum.txt), if any."""
    if not item.md5_list:
        return None
    try:
        r = session.get(item.md5_list, timeout=timeout)
    except requests.RequestException:
        return None
    if r.status_code != 200:
        return None
    name = item.url.rsplit("/", 1)[1]
    for line in r.text.splitlines():
        parts = line.split()
        if (
            len(parts) == 2
            and parts[1].lstrip("*./") == name
            and re.fullmatch(r"[0-9a-fA-F]{32}", parts[0])
        ):
            return parts[0].lower()
    return None


def gunzip(src: Path, dst: Path) -> tuple[int, str]:
    """Decompress ``src`` into ``dst`` (via ``dst.part``); returns (bytes, sha256) of ``dst``."""
    part = dst.with_name(dst.name + ".part")
    h = hashlib.sha256()
    size = 0
    with gzip.open(src, "rb") as fin, open(part, "wb") as fout:
        for block in iter(lambda: fin.read(CHUNK), b""):
            fout.write(block)
            h.update(block)
            size += len(block)
    os.replace(part, dst)
    return size, h.hexdigest()


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Failure:
    item: Item
    message: str


@dataclass
class FetchReport:
    """What a fetch did: files fetched / already there, failures, the manifest written."""

    dest: Path
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: Path | None = None
    epigenomes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _parse_epigenomes(values: Sequence[str]) -> list[str]:
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


def fetch_roadmap(
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
    """
    if annotation not in ANNOTATIONS:
        raise ValueError(f"--annotation {annotation!r} is not one of {sorted(ANNOTATIONS)}")
    if not marks:
        raise ValueError("--marks: at least one mark")
    import pooch

    pooch.get_logger().setLevel("WARNING")
    dest = Path(dest).expanduser().resolve()
    base = mirror_base(mirror)
    ids = _parse_epigenomes(epigenomes)
    report = FetchReport(dest)
    session = requests.Session()
    known = builtin_epigenomes()

    shared = plan([], marks, genome=genome, annotation=annotation, mirror=base)
    rpkm_item = shared[0]

    def expand(table_ids: list[str] | None) -> list[str]:
        pool = table_ids if table_ids is not None else list(known)
        return [c for c in pool if c != "E000"] if ids == ["all"] else ids

    if dry_run:
        rpkm_local = dest / rpkm_item.local
        table_ids = rpkm_columns(rpkm_local) if rpkm_local.is_file() else None
        if ids == ["all"] and table_ids is None:
            report.notes.append(
                f"'all' = the {len(known)} epigenomes of the built-in table (the RPKM matrix "
                "is not downloaded yet; its header decides on a real run)"
            )
        items = plan(expand(table_ids), marks, genome=genome, annotation=annotation, mirror=base)
        _dry_run(items, dest, session, report, out)
        return report

    dest.mkdir(parents=True, exist_ok=True)
    checks = Checksums(dest)
    failed_targets: set[str] = set()

    def get(item: Item, bar) -> None:
        target = dest / item.target
        rec = checks.get(item.target)
        if target.exists():
            if rec is not None:
                problem = verify(target, rec, deep=deep_verify)
                if problem is None:
                    report.cached.append(item.target)
                    return
                out(f"checksum: {problem}; removed it, fetching it again")
                report.notes.append(problem)
                target.unlink()
            else:
                size, note = head_size(item.url, session)
                if item.product is None and not note and size == target.stat().st_size:
                    checks.set(item.local, Record(size, sha256_of(target), item.url))
                    report.cached.append(item.target)
                    return
                target.unlink()  # unrecorded and not provably complete
        if item.product:
            for stale in (target.with_name(target.name + ".fai"),):
                stale.unlink(missing_ok=True)
        dl = dest / item.local
        dl_rec = checks.get(item.local) if item.product else None
        if not (
            item.product and dl.exists() and dl_rec and verify(dl, dl_rec, deep_verify) is None
        ):
            dl.unlink(missing_ok=True)
            expected = None
            if rec is not None and not item.product:
                expected = f"sha256:{rec.sha256}"
            else:
                md5 = source_md5(item, session)
                expected = f"md5:{md5}" if md5 else None
            downloader = ResumableDownloader(
                dl.with_name(dl.name + ".part"),
                label=item.label,
                progress=progress,
                timeout=timeout,
                session=session,
            )
            registry = pooch.create(
                path=dest,
                base_url="",
                registry={item.local: expected},
                urls={item.local: item.url},
                retry_if_failed=retries,
            )
            try:
                registry.fetch(item.local, downloader=downloader)
            except FetchError as err:
                raise FetchError(f"{err} (for the {item.label})") from None
            except SizeMismatch as err:
                raise FetchError(f"{err} (for the {item.label})") from None
            except ValueError as err:  # pooch: known hash mismatch (file already deleted)
                raise FetchError(f"{item.url}: {err} (for the {item.label})") from None
            except requests.RequestException as err:
                part = downloader.part
                have = part.stat().st_size if part.exists() else 0
                raise FetchError(
                    f"{item.url}: transfer failed ({type(err).__name__}) after {have:,} bytes "
                    f"(for the {item.label}); run again to resume from {part.name}"
                ) from None
            checks.set(item.local, Record(downloader.size, downloader.sha256, item.url))
            if downloader.resumed_from:
                report.notes.append(f"{item.local}: resumed from byte {downloader.resumed_from:,}")
            report.fetched.append(item.local)
        if item.product:
            size, digest = gunzip(dl, target)
            checks.set(item.product, Record(size, digest, f"{item.url} (gunzipped)"))
            dl.unlink()
            checks.set(item.local, None)

    from tqdm.auto import tqdm

    def run(items: list[Item], bar) -> None:
        for item in items:
            try:
                get(item, bar)
            except FetchError as err:
                report.failures.append(Failure(item, str(err)))
                failed_targets.add(item.target)
                (bar.write if progress else out)(f"failed: {err}")
            bar.update(1)

    with tqdm(
        total=len(shared), unit="file", desc="fetch", position=0, disable=not progress
    ) as bar:
        run(shared, bar)
        rpkm = dest / rpkm_item.local
        table_ids = (
            rpkm_columns(rpkm)
            if rpkm.is_file() and rpkm_item.target not in failed_targets
            else None
        )
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
        bigwigs = plan(wanted, marks, genome=False, annotation=annotation, mirror=base)[2:]
        bar.total = len(shared) + len(bigwigs)
        bar.refresh()
        run(bigwigs, bar)

    complete = [
        e
        for e in wanted
        if all(f"bigwig/{e}-{m}.pval.signal.bigwig" not in failed_targets for m in marks)
    ]
    report.left_out += [e for e in wanted if e not in complete]
    manifest = dest / "manifest.toml"
    shared_missing = [i.label for i in shared if i.target in failed_targets]
    if shared_missing or not complete:
        if manifest.exists():
            manifest.unlink()
        why = (
            f"the {', '.join(shared_missing)} failed"
            if shared_missing
            else "no epigenome has all its bigWigs"
        )
        report.notes.append(f"no manifest written ({why}); run again to finish")
    else:
        chroms = _chroms(dest / shared[1].target, dest / shared[2].target if genome else None)
        text = manifest_text(
            complete,
            marks,
            annotation_path=shared[1].target,
            rpkm_path=rpkm_item.local,
            fasta_path=shared[2].target if genome else None,
            chroms=chroms,
            names=known,
        )
        tmp = manifest.with_name("manifest.toml.tmp")
        tmp.write_text(text)
        os.replace(tmp, manifest)
        report.manifest = manifest
        report.epigenomes = complete
        if report.left_out:
            report.notes.append(
                f"manifest restricted to the {len(complete)} complete epigenomes; left out: "
                f"{', '.join(report.left_out)}"
            )
    return report


def _chroms(annotation: Path, fasta_path: Path | None) -> list[str]:
    """chr1-chr22 present in the annotation (and the FASTA), in order."""
    import pandas as pd

    col = pd.read_csv(annotation, sep="\t", comment="#", header=None, usecols=[0], dtype=str)[
        0
    ].unique()
    present = set(col)
    if fasta_path is not None:
        from pitfall.sources import fasta

        present &= set(fasta.chrom_sizes(fasta_path))
    return [c for c in AUTOSOMES if c in present]


def manifest_text(
    epigenomes: Sequence[str],
    marks: Sequence[str],
    *,
    annotation_path: str,
    rpkm_path: str,
    fasta_path: str | None,
    chroms: Sequence[str],
    names: dict[str, tuple[str, str]],
) -> str:
    """The expression-task manifest (paths relative to DEST)."""
    from pitfall.manifest import dumps_manifest

    data: dict = {
        "assembly": "hg19",
        "chroms": list(chroms),
        "loci": {"tss": annotation_path, "upstream": UPSTREAM, "downstream": DOWNSTREAM},
    }
    if fasta_path:
        data["sequence"] = {"fasta": fasta_path}
    data["signal"] = {"marks": list(marks)}
    data["target"] = {"kind": "expression", "table": rpkm_path, "threshold": THRESHOLD}
    data["cell_types"] = {
        e: {
            "name": names.get(e, (e, ""))[0],
            "group": names.get(e, (e, ""))[1],
            "signal": {m: f"bigwig/{e}-{m}.pval.signal.bigwig" for m in marks},
        }
        for e in epigenomes
    }
    header = (
        "# Written by `pitfall fetch roadmap`: the expression task of Schreiber et al. (2020),\n"
        "# 2 kbp upstream of each TSS, autosomes, label = RPKM > 0.5.\n"
        "# chroms: the autosomes present in the fetched annotation (and genome).\n"
    )
    return header + dumps_manifest(data)


def _human(n: float | None) -> str:
    return "?" if n is None else human_bytes(n)


def _dry_run(
    items: list[Item],
    dest: Path,
    session: requests.Session,
    report: FetchReport,
    out: Callable[[str], None],
) -> None:
    checks = Checksums(dest) if dest.is_dir() else None
    total = todo = 0
    unknown = 0
    extra = 0.0
    out(f"{'size':>11}  {'state':<12} file")
    for item in items:
        size, note = head_size(item.url, session)
        have = dest / item.target
        if note:
            state = "MISSING"
            report.failures.append(Failure(item, f"{item.url}: {note} (for the {item.label})"))
        elif have.exists() and checks is not None and checks.get(item.target):
            state = "have"
        elif (dest / (item.local + ".part")).exists():
            got = (dest / (item.local + ".part")).stat().st_size
            state = f"partial {_human(got)}"
            todo += (size or 0) - got
        else:
            state = "get"
            todo += size or 0
        if size is None:
            unknown += 1
        total += size or 0
        if item.product and state != "have" and size:
            extra += size * FASTA_GZIP_RATIO
        out(f"{_human(size):>11}  {state:<12} {item.url}")
        if note:
            out(f"{'':>11}  {'':<12} ({note}; for the {item.label})")
    probe = dest
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    out(
        f"{len(items)} files, {_human(total)} in all"
        + (f" ({unknown} of unknown size)" if unknown else "")
    )
    out(
        f"to download: {_human(todo)}"
        + (f"; gunzipped hg19.fa adds about {_human(extra)}" if extra else "")
    )
    out(f"free at {probe}: {_human(free)}" + ("  (NOT ENOUGH)" if free < todo + extra else ""))
    for note in report.notes:
        out(f"note: {note}")


# --------------------------------------------------------------------------------------------
# Command line


def add_fetch_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fetch`` (with its source ``roadmap``) to the ``pitfall`` sub-commands."""
    p = subparsers.add_parser("fetch", help="download public data and write its manifest")
    sources = p.add_subparsers(dest="source", required=True)
    q = sources.add_parser(
        "roadmap",
        help="Roadmap RNA-seq + histone bigWigs, GENCODE, hg19 (the paper's expression task)",
        description="Download Roadmap's RPKM matrix, MACS2 p-value bigWigs, a GENCODE "
        "annotation and hg19 into DEST, then write DEST/manifest.toml for `pitfall build`.",
    )
    q.add_argument("--dest", required=True, help="folder to download into (also the cache)")
    q.add_argument(
        "--epigenomes",
        nargs="+",
        required=True,
        metavar="EID",
        help="Roadmap ids (E003 E116 or E003,E116), or 'all' (every epigenome of the RPKM "
        "matrix except E000)",
    )
    q.add_argument(
        "--marks",
        nargs="+",
        default=list(CORE_MARKS),
        metavar="MARK",
        help=f"histone marks (default the core five: {' '.join(CORE_MARKS)})",
    )
    q.add_argument(
        "--genome",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fetch hg19 (gunzipped to hg19/hg19.fa) and add [sequence] (default: yes)",
    )
    q.add_argument("--annotation", choices=sorted(ANNOTATIONS), default="gencode-v19")
    q.add_argument(
        "--mirror",
        default=None,
        help=f"one base URL serving the mirror layout (default ${MIRROR_ENV}, else the public sites)",
    )
    q.add_argument("--dry-run", action="store_true", help="list files, sizes and free space only")
    q.add_argument(
        "--no-verify",
        dest="deep_verify",
        action="store_false",
        help="check files already present by size only, not sha256",
    )
    q.add_argument("--retries", type=int, default=2, help="attempts after a failure (default 2)")
    q.add_argument("--no-progress", dest="progress", action="store_false")
    q.set_defaults(func=run_fetch_cli)
    return p


def run_fetch_cli(args: argparse.Namespace) -> int:
    """Run ``pitfall fetch``; 0 when everything is in place, 1 when some file failed."""
    report = fetch_roadmap(
        args.dest,
        args.epigenomes,
        args.marks,
        genome=args.genome,
        annotation=args.annotation,
        mirror=args.mirror,
        dry_run=args.dry_run,
        deep_verify=args.deep_verify,
        retries=args.retries,
        progress=args.progress and sys.stderr.isatty(),
    )
    if not args.dry_run:
        print(
            f"fetch into {report.dest}: {len(report.fetched)} downloaded, "
            f"{len(report.cached)} already there (verified)"
        )
        for note in report.notes:
            print(f"  note: {note}")
        if report.manifest:
            print(f"  manifest: {report.manifest} ({len(report.epigenomes)} epigenomes)")
    if report.failures:
        print(f"{len(report.failures)} failed:", file=sys.stderr)
        for f in report.failures:
            print(f"  {f.message}", file=sys.stderr)
        return 1
    return 0
