"""Resumable, verified downloads of public files into a folder (any data source).

A data set module (:mod:`pitfall.datasets.roadmap`) lists what to fetch as :class:`Item`
objects; :func:`fetch_items` fetches them into a folder ``DEST`` with :mod:`pooch`:

- Resume: :class:`ResumableDownloader` writes ``<file>.part`` and, when one is there, asks
  for the rest with an HTTP ``Range`` header; a server that ignores the range (200 instead
  of 206) restarts the file. An interrupted transfer keeps its ``.part``; the next run (or
  pooch's retry) continues it.
- Size: the bytes received must add up to the size the server announced (Content-Length or
  Content-Range); otherwise the partial file is removed and the error names the URL and the
  expected size.
- Checksums from the source: an item may name a checksum list the source publishes
  (``md5sum.txt``, ``MD5SUMS``); its MD5 is passed to pooch as the known hash (a mismatch
  removes the file and names the URL and the expected MD5).
- Recorded checksums: the sha256 (computed while downloading) and size of every finished
  file go to ``DEST/checksums.tsv``. A later run verifies each file present against its
  record (``deep_verify=False``: size only) and skips it, so a second run sends no request;
  a file that fails its record is removed, reported (URL, expected size / sha256) and
  fetched again, and must then match the record (the record pins the data: delete its line
  to accept a changed upstream file).
- Products: an item with a ``product`` is gunzipped into it once downloaded (e.g. a genome
  FASTA that pyfaidx must index), and the download removed.

A failed item does not stop the others: it becomes a :class:`Failure` of the
:class:`DownloadReport`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from pitfall import _checksum as checksum
from pitfall._atomic import atomic_write_text
from pitfall._logs import progress_bars
from pitfall.cube import human_bytes

__all__ = [
    "CHUNK",
    "Checksums",
    "DownloadReport",
    "Failure",
    "FetchError",
    "Item",
    "Record",
    "ResumableDownloader",
    "SizeMismatch",
    "dry_run",
    "fetch_items",
    "gunzip",
    "head_size",
    "published_md5",
    "verify",
]

#: Bytes per read and write while streaming.
CHUNK = 1 << 20
#: Rough gzip ratio of a FASTA, for the disk-space estimate of a dry run's gunzipped products.
GUNZIP_RATIO = 3.4


class FetchError(Exception):
    """A download that failed for good (HTTP error, size or checksum mismatch).

    Deliberately not a ``ValueError`` / ``requests`` exception, so pooch does not retry it.
    """


class SizeMismatch(ValueError):
    """Fewer or more bytes than announced (a ``ValueError``: pooch retries it)."""


@dataclass
class Item:
    """One file to fetch.

    Attributes
    ----------
    url : str
        Where it is served.
    local : str
        Path under DEST of the download.
    label : str
        What it is, in words, for messages (``"E003 H3K4me3"``, ``"genome"``).
    md5_list : str or None
        URL of a checksum list the source publishes (lines ``<md5>  <file name>``).
    product : str or None
        Path under DEST of the file gunzipped from the download (then the download goes).
    """

    url: str
    local: str
    label: str
    md5_list: str | None = None
    product: str | None = None

    @property
    def target(self) -> str:
        """The file that must end up in DEST."""
        return self.product or self.local


@dataclass
class Failure:
    """An item that could not be fetched, and why (the message names its URL)."""

    item: Item
    message: str


@dataclass
class DownloadReport:
    """What a fetch did: files downloaded / already there (verified), failures, notes."""

    dest: Path
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every item is in place."""
        return not self.failures

    def failed(self, item: Item) -> bool:
        """Whether ``item`` failed in this run."""
        return any(f.item.target == item.target for f in self.failures)


# --------------------------------------------------------------------------------------------
# Recorded checksums


@dataclass
class Record:
    """Size, sha256 and source URL of a finished file."""

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
        """The record of ``path`` (under DEST), or None."""
        return self.rows.get(path)

    def set(self, path: str, rec: Record | None) -> None:
        """Record ``path`` (None: forget it) and rewrite the file atomically."""
        if rec is None:
            self.rows.pop(path, None)
        else:
            self.rows[path] = rec
        lines = [f"{p}\t{r.bytes}\t{r.sha256}\t{r.url}\n" for p, r in sorted(self.rows.items())]
        atomic_write_text(self.path, self.HEADER + "".join(lines))


def verify(path: Path, rec: Record, deep: bool = True) -> str | None:
    """None when ``path`` matches its record, else what is wrong (naming URL and expectation)."""
    size = path.stat().st_size
    if size != rec.bytes:
        return (
            f"{path}: size {size:,} bytes differs from the {rec.bytes:,} recorded in "
            f"checksums.tsv for {rec.url}"
        )
    if deep:
        got = checksum.sha256_of(path)
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

    def __call__(self, url: str, output_file: Any, pooch: Any = None, check_only: bool = False):
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
            chunks: Iterator[bytes] = iter(())
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
            checksum.update_from_file(h, self.part)
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=self.label or url.rsplit("/", 1)[-1],
            leave=False,
            position=1,
            disable=not progress_bars(self.progress),
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


def _raw_chunks(r: requests.Response) -> Iterator[bytes]:
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


def published_md5(item: Item, session: requests.Session, timeout: float = 30.0) -> str | None:
    """The MD5 the source publishes for ``item`` in its ``md5_list``, if any."""
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
# Fetching a list of items


@dataclass
class Fetcher:
    """Fetches items into ``dest`` one by one, recording checksums and filling ``report``.

    Parameters
    ----------
    dest
        The folder (created if absent).
    report
        Where fetched / cached files, failures and notes go.
    deep_verify
        Check files already present against their recorded sha256 (else size only).
    retries
        Further attempts (resuming) after a network error or size / checksum mismatch.
    progress
        Show progress bars (tqdm).
    timeout
        Seconds per HTTP request.
    out
        Where messages go when no progress bar is shown.
    """

    dest: Path
    report: DownloadReport
    deep_verify: bool = True
    retries: int = 2
    progress: bool = True
    timeout: float = 60.0
    out: Callable[[str], None] = print
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.dest.mkdir(parents=True, exist_ok=True)
        self.checks = Checksums(self.dest)

    def fetch(self, items: Sequence[Item], bar: Any = None) -> None:
        """Fetch every item; a failure is recorded and the next item goes on."""
        for item in items:
            try:
                self._get(item)
            except FetchError as err:
                self.report.failures.append(Failure(item, str(err)))
                (bar.write if bar is not None and self.progress else self.out)(f"failed: {err}")
            if bar is not None:
                bar.update(1)

    def _present(self, item: Item) -> bool:
        """Whether ``item``'s target is already in place (verified); removes it when not."""
        target = self.dest / item.target
        if not target.exists():
            return False
        rec = self.checks.get(item.target)
        if rec is not None:
            problem = verify(target, rec, deep=self.deep_verify)
            if problem is None:
                return True
            self.out(f"checksum: {problem}; removed it, fetching it again")
            self.report.notes.append(problem)
        elif item.product is None:
            size, note = head_size(item.url, self.session)
            if not note and size == target.stat().st_size:
                self.checks.set(item.local, Record(size, checksum.sha256_of(target), item.url))
                return True
        target.unlink()  # failed its record, or unrecorded and not provably complete
        return False

    def _get(self, item: Item) -> None:
        if self._present(item):
            self.report.cached.append(item.target)
            return
        target = self.dest / item.target
        if item.product:
            # An index of an older product would describe the wrong file.
            target.with_name(target.name + ".fai").unlink(missing_ok=True)
        dl = self.dest / item.local
        dl_rec = self.checks.get(item.local) if item.product else None
        if not (
            item.product and dl.exists() and dl_rec and verify(dl, dl_rec, self.deep_verify) is None
        ):
            self._download(item, dl)
        if item.product:
            size, digest = gunzip(dl, target)
            self.checks.set(item.product, Record(size, digest, f"{item.url} (gunzipped)"))
            dl.unlink()
            self.checks.set(item.local, None)

    def _download(self, item: Item, dl: Path) -> None:
        import pooch

        pooch.get_logger().setLevel("WARNING")
        dl.unlink(missing_ok=True)
        rec = self.checks.get(item.target)
        if rec is not None and not item.product:
            expected: str | None = f"sha256:{rec.sha256}"
        else:
            md5 = published_md5(item, self.session)
            expected = f"md5:{md5}" if md5 else None
        downloader = ResumableDownloader(
            dl.with_name(dl.name + ".part"),
            label=item.label,
            progress=self.progress,
            timeout=self.timeout,
            session=self.session,
        )
        registry = pooch.create(
            path=self.dest,
            base_url="",
            registry={item.local: expected},
            urls={item.local: item.url},
            retry_if_failed=self.retries,
        )
        try:
            registry.fetch(item.local, downloader=downloader)
        except (FetchError, SizeMismatch) as err:
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
        assert downloader.size is not None and downloader.sha256 is not None
        self.checks.set(item.local, Record(downloader.size, downloader.sha256, item.url))
        if downloader.resumed_from:
            self.report.notes.append(f"{item.local}: resumed from byte {downloader.resumed_from:,}")
        self.report.fetched.append(item.local)


def fetch_items(
    items: Sequence[Item],
    dest: str | os.PathLike,
    *,
    report: DownloadReport | None = None,
    deep_verify: bool = True,
    retries: int = 2,
    progress: bool = True,
    timeout: float = 60.0,
    out: Callable[[str], None] = print,
) -> DownloadReport:
    """Fetch ``items`` into ``dest`` (see the module docstring); failures go to the report."""
    from tqdm.auto import tqdm

    dest = Path(dest).expanduser().resolve()
    report = report if report is not None else DownloadReport(dest)
    fetcher = Fetcher(dest, report, deep_verify, retries, progress, timeout, out)
    with tqdm(
        total=len(items), unit="file", desc="fetch", disable=not progress_bars(progress)
    ) as bar:
        fetcher.fetch(items, bar)
    return report


def _human(n: float | None) -> str:
    return "?" if n is None else human_bytes(n)


def dry_run(
    items: Sequence[Item],
    dest: Path,
    report: DownloadReport,
    *,
    session: requests.Session | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """List every item with its size (HTTP HEAD) and state, the total and the free disk space.

    Downloads nothing; an item the server does not have becomes a failure of ``report``.
    """
    session = session or requests.Session()
    checks = Checksums(dest) if dest.is_dir() else None
    total = todo = 0
    unknown = 0
    extra = 0.0
    out(f"{'size':>11}  {'state':<12} file")
    for item in items:
        size, note = head_size(item.url, session)
        have = dest / item.target
        part = dest / (item.local + ".part")
        if note:
            state = "MISSING"
            report.failures.append(Failure(item, f"{item.url}: {note} (for the {item.label})"))
        elif have.exists() and checks is not None and checks.get(item.target):
            state = "have"
        elif part.exists():
            got = part.stat().st_size
            state = f"partial {_human(got)}"
            todo += (size or 0) - got
        else:
            state = "get"
            todo += size or 0
        if size is None:
            unknown += 1
        total += size or 0
        if item.product and state != "have" and size:
            extra += size * GUNZIP_RATIO
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
        + (f"; gunzipped files add about {_human(extra)}" if extra else "")
    )
    out(f"free at {probe}: {_human(free)}" + ("  (NOT ENOUGH)" if free < todo + extra else ""))
    for note in report.notes:
        out(f"note: {note}")
