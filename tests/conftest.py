"""Shared fixtures: the real data folder, a chunked tiny cube, and real servers the tests
start on 127.0.0.1.

- ``chunked_cube_path``: the tiny synthetic cube built in small locus chunks, and
  ``hybrid_split``, a split of it with several training cell types (loaders and models);
- ``s3``: an S3-compatible server (``moto_server``) in its own process, with a bucket; the
  test session's environment points ``AWS_ENDPOINT_URL`` at it (credentials are dummies),
  so every process the tests start (CLI, Dask workers) reaches the same server;
- ``http_files``: an HTTP server with range requests serving a folder, counting the bytes
  it sends per file (to check that readers fetch ranges, not whole files).
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "pitfall-test-key",
    "AWS_SECRET_ACCESS_KEY": "pitfall-test-secret-never-in-a-cube",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}
BUCKET = "pitfall-tests"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data``; skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent")
    return DATA


#: Loci per chunk of ``chunked_cube_path``: several chunks in the tiny cube, so grouping by
#: chunk is exercised.
CHUNKED_LOCUS_CHUNK = 64


@pytest.fixture(scope="session")
def chunked_cube_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic cube in chunks of :data:`CHUNKED_LOCUS_CHUNK` loci, built once a
    session (the tests only read it)."""
    from pitfall import featurize, synth

    root = tmp_path_factory.mktemp("chunked")
    comp = synth.synthesize(root / "synth", "tiny")
    text = comp.manifest.read_text()
    comp.manifest.write_text(f"locus_chunk = {CHUNKED_LOCUS_CHUNK}\n" + text)
    featurize.build(comp.manifest, root / "cube", workers=1, processes=False, progress=False)
    return root / "cube"


@pytest.fixture(scope="session")
def hybrid_split():
    """A hybrid split of the tiny cube with three training cell types (the cross-cell-type
    preset keeps only one of its six)."""
    from pitfall import splits

    return splits.Split(
        ("E004", "E037", "E116"), ("chr2", "chr3"), ("E113",), ("chr2", "chr3"),
        ("E003",), ("chr1",), setting="hybrid",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.communicate()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class S3Server:
    """A running moto S3 server: its endpoint, and a fresh prefix per call of :meth:`url`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def url(self, name: str = "cube") -> str:
        return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex[:8]}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def objects(self, url: str) -> dict[str, str]:
        """Key -> ETag of every object under an ``s3://`` URL."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        out = {}
        for page in (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix + "/")
        ):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out

    def read(self, url: str, key: str) -> bytes:
        bucket = url.removeprefix("s3://").partition("/")[0]
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> S3Server:
    """An S3-compatible server on 127.0.0.1 for the whole session (skips without moto)."""
    # The environment's own server first (the one its dev extra pins), then PATH's.
    moto = str(Path(sys.executable).with_name("moto_server"))
    if not Path(moto).exists():
        moto = shutil.which("moto_server") or moto
    if not Path(moto).exists():
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    _wait_for_port(port, proc)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    server = S3Server(endpoint)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` support (what object stores and CDNs offer)."""

    sent: Counter = Counter()
    whole: Counter = Counter()
    ranged: Counter = Counter()

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return None
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        fh = open(path, "rb")  # noqa: SIM115 (closed by the base class)
        if match:
            lo = int(match.group(1))
            hi = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
            if lo >= size:
                fh.close()
                self.send_error(416, "range not satisfiable")
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{size}")
            fh.seek(lo)
            length = hi - lo + 1
        else:
            self.send_response(200)
            length = size
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{int(path.stat().st_mtime_ns)}-{size}"')
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()
        if self.command == "GET":
            type(self).sent[path.name] += length
            (type(self).ranged if match else type(self).whole)[path.name] += 1
            self._remaining = length
        return fh

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        remaining = getattr(self, "_remaining", None)
        while remaining is None or remaining > 0:
            block = source.read(1 << 16 if remaining is None else min(1 << 16, remaining))
            if not block:
                break
            outputfile.write(block)
            if remaining is not None:
                remaining -= len(block)


class HttpFiles:
    """A folder served over HTTP: its base URL; per file name, the bytes sent and the number
    of whole-file and of range GET requests."""

    def __init__(self, root: Path, base: str, handler: type) -> None:
        self.root, self.base = root, base
        self.sent, self.whole, self.ranged = handler.sent, handler.whole, handler.ranged

    def url(self, path: Path) -> str:
        return f"{self.base}/{path.resolve().relative_to(self.root.resolve()).as_posix()}"


@pytest.fixture
def http_files(tmp_path: Path) -> HttpFiles:
    """Serve ``tmp_path / 'www'`` over HTTP with range requests on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type(
        "Handler", (_RangeHandler,), {"sent": Counter(), "whole": Counter(), "ranged": Counter()}
    )

    def make(*args, **kw):
        return handler(*args, directory=str(root), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpFiles(root, f"http://127.0.0.1:{server.server_address[1]}", handler)
    server.shutdown()
    server.server_close()
