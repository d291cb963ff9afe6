"""A cluster build: a real scheduler and workers, the cube on S3, every input over HTTP.

The test starts ``dask scheduler`` and two ``dask worker`` processes (each in its own empty
working directory, with its own download cache), an S3-compatible server and an HTTP
server with range requests, all on 127.0.0.1. It builds a synthetic cube on S3 from inputs
that exist only as URLs, appends to it, and checks every value against a local build made
in one process from the same files on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyfaidx
import pytest

from pitfall import cube, featurize, synth
from pitfall.manifest import dumps_manifest, load_manifest

pytestmark = pytest.mark.slow


def _dask(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen(
        [str(exe), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def cluster(tmp_path: Path, s3):
    """A scheduler file of a running scheduler with two single-threaded worker processes."""
    from distributed import Client

    sched_dir, files = tmp_path / "scheduler", tmp_path / "scheduler.json"
    sched_dir.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [
        _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(files),
            cwd=sched_dir,
            env=env,
        )  # fmt: skip
    ]
    deadline = time.monotonic() + 60
    while not files.exists():
        assert time.monotonic() < deadline, "the scheduler never wrote its file"
        time.sleep(0.1)
    for i in range(2):
        wdir = tmp_path / f"worker{i}"
        wdir.mkdir()
        procs.append(
            _dask(
                "worker",
                "--scheduler-file",
                str(files),
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(wdir),
                cwd=wdir,
                env={**env, "PITFALL_CACHE": str(wdir / "cache")},
            )  # fmt: skip
        )
    with Client(scheduler_file=str(files)) as client:
        client.wait_for_workers(2, timeout=120)
    yield files
    for proc in procs[::-1]:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _url_manifest(comp: synth.SynthCompendium, http_files) -> Path:
    """The compendium's expression manifest with every input as a URL of the HTTP server."""
    m = load_manifest(comp.manifest)
    url = lambda p: http_files.url(Path(p))  # noqa: E731
    raw = {
        "assembly": m.assembly,
        "locus_chunk": 128,  # several blocks per cell type
        "loci": {"tss": url(m.loci_path), "upstream": m.upstream, "downstream": m.downstream},
        "sequence": {"fasta": url(m.fasta)},
        "signal": {"marks": m.marks},
        "target": {"kind": "expression", "table": url(m.table), "threshold": m.threshold},
        "cell_types": {
            ct: {
                "name": spec.name,
                "group": spec.group,
                "signal": {mk: url(p) for mk, p in spec.signal.items()},
            }
            for ct, spec in m.cell_types.items()
        },
    }
    path = http_files.root.parent / "remote_manifest.toml"
    path.write_text(dumps_manifest(raw))
    return path


def test_cluster_build__s3_cube_from_http_inputs_equals_local_build(
    tmp_path: Path, s3, http_files, cluster, monkeypatch
) -> None:
    monkeypatch.setenv("PITFALL_CACHE", str(tmp_path / "driver-cache"))
    comp = synth.synthesize(http_files.root / "compendium", "tiny")
    pyfaidx.Faidx(str(comp.root / "genome.fa")).close()  # its .fai, as `samtools faidx` makes
    manifest = _url_manifest(comp, http_files)
    cts = list(comp.cell_types)
    where = s3.url("cluster")

    # The build commits cell type by cell type (blocks of later ones computed ahead on the
    # workers); the append puts its three small cell types in one commit.
    summary = featurize.build(
        manifest, where, cell_types=cts[:3], scheduler=str(cluster), progress=False,
        cell_types_per_commit=1,
    )  # fmt: skip
    assert summary.cell_types == cts[:3]
    summary = featurize.append(where, manifest, cts[3:], scheduler=str(cluster), progress=False)
    assert summary.cell_types == cts[3:]

    local = tmp_path / "local"
    raw = load_manifest(comp.manifest)
    raw.locus_chunk = 128
    featurize.build(raw, local, workers=0, progress=False)

    got, want = cube.open_cube(where).load(), cube.open_cube(local).load()
    assert list(got["cell_type"].values) == cts
    for name in ("label", "value", "signal", "sequence", "start", "end", "locus"):
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    for name in ("chrom", "strand", "name", "cell_type_name", "mark"):
        assert list(got[name].values) == list(want[name].values), name
    assert [c.cell_types for c in cube.cube_log(where)][:-1][::-1] == [
        *([c] for c in cts[:3]),
        cts[3:],
    ]
    # The driver planned and checked from headers and indexes: it downloaded no FASTA and
    # no bigWig. The FASTA reached the workers through their own caches.
    driver_cache = tmp_path / "driver-cache"
    assert not [p for p in driver_cache.rglob("*") if p.suffix in (".fa", ".bw")]
    assert any(list((tmp_path / f"worker{i}" / "cache").rglob("genome.fa")) for i in range(2))
    # bigWigs travelled as range requests only, never as whole files.
    bigwigs = {p.name for p in (http_files.root / "compendium" / "bigwig").iterdir()}
    assert bigwigs and not (bigwigs & set(http_files.whole))
    assert bigwigs <= set(http_files.ranged)
