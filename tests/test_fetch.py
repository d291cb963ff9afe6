"""`pitfall fetch roadmap` against a local HTTP server serving tiny files in the real layout:
:mod:`pitfall.download` (resume, sizes, checksums) and :mod:`pitfall.datasets.roadmap`."""

from __future__ import annotations

import gzip
import hashlib
import re
import tomllib
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
from werkzeug import Request, Response

from pitfall import cli, download
from pitfall.datasets import roadmap
from pitfall.genome import AUTOSOMES, CORE_MARKS
from pitfall.manifest import load_manifest

pytest.importorskip("pooch")

EIDS = ("E003", "E004", "E005")
MARKS = ("H3K4me3", "H3K27me3")
CHROMS = {"chr1": 30_000, "chr2": 20_000}
BW = "roadmap/data/byFileType/signal/consolidated/macs2signal/pval"
RPKM = "roadmap/data/byDataType/rna/expression/57epigenomes.RPKM.pc.gz"
GTF = "gencode/Gencode_human/release_19/gencode.v19.annotation.gtf.gz"
# (gene id, chrom, start (1-based), end, strand); one gene on chrX is not an autosome.
GENES = [
    ("ENSG00000000001.5", "chr1", 5_001, 9_000, "+"),
    ("ENSG00000000002.3", "chr1", 12_001, 15_000, "-"),
    ("ENSG00000000003.1", "chr1", 1_001, 2_000, "+"),  # window clipped at the start
    ("ENSG00000000004.2", "chr2", 8_001, 11_000, "+"),
    ("ENSG00000000005.7", "chr2", 14_001, 18_500, "-"),
    ("ENSG00000000006.1", "chrX", 100, 900, "+"),
]


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _bigwig(path: Path, rng: np.random.Generator) -> bytes:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(CHROMS.items()))
    for chrom, size in CHROMS.items():
        edges = np.unique(np.r_[0, np.sort(rng.integers(1, size, 60)), size])
        starts, ends = edges[:-1], edges[1:]
        keep = rng.random(len(starts)) > 0.2  # some gaps: no data counts as 0
        vals = rng.gamma(1.5, 3.0, len(starts))
        bw.addEntries(
            [chrom] * int(keep.sum()),
            starts[keep].tolist(),
            ends=ends[keep].tolist(),
            values=vals[keep].tolist(),
        )
    bw.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, bytes]:
    """Files by path under the mirror."""
    rng = np.random.default_rng(7)
    tmp = tmp_path_factory.mktemp("src")
    files: dict[str, bytes] = {}
    fasta = "".join(
        f">{c}\n"
        + "\n".join(
            s[i : i + 60] for s in ["".join(rng.choice(list("ACGT"), n))] for i in range(0, n, 60)
        )
        + "\n"
        for c, n in CHROMS.items()
    )
    files["hg19/hg19.fa.gz"] = _gz(fasta.encode())
    files["hg19/md5sum.txt"] = (
        f"{hashlib.md5(files['hg19/hg19.fa.gz']).hexdigest()}  hg19.fa.gz\n".encode()
    )
    gtf = ["##description: tiny\n"]
    for gid, chrom, s, e, strand in GENES:
        attrs = f'gene_id "{gid}"; gene_type "protein_coding"; gene_name "G{gid[-3:]}";'
        gtf.append(f"{chrom}\tHAVANA\tgene\t{s}\t{e}\t.\t{strand}\t.\t{attrs}\n")
        gtf.append(f"{chrom}\tHAVANA\ttranscript\t{s}\t{e}\t.\t{strand}\t.\t{attrs}\n")
    files[GTF] = _gz("".join(gtf).encode())
    cols = ("E000",) + EIDS
    rows = ["gene_id\t" + "\t".join(cols) + "\n"]
    for gid, *_ in GENES:
        vals = rng.choice([0.0, 0.2, 0.5, 0.51, 3.0, 40.0], len(cols))
        rows.append(gid.split(".")[0] + "\t" + "\t".join(f"{v:.3f}" for v in vals) + "\t\n")
    files[RPKM] = _gz("".join(rows).encode())
    for e in EIDS:
        for m in MARKS:
            name = f"{e}-{m}.pval.signal.bigwig"
            files[f"{BW}/{name}"] = _bigwig(tmp / name, rng)
    return files


class Mirror:
    """A mirror on pytest-httpserver: serves ``files`` with HEAD and Range, logs requests."""

    def __init__(self, httpserver, files: dict[str, bytes]) -> None:
        self.server = httpserver
        self.files = dict(files)
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range
        self.truncate: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.ignore_range = False
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.handle)
        self.url = httpserver.url_for("/").rstrip("/")

    def handle(self, request: Request) -> Response:
        path = request.path.lstrip("/")
        rng = request.headers.get("Range")
        self.requests.append((request.method, path, rng))
        if path not in self.files:
            return Response("not found", status=404)
        data = self.files[path]
        if rng and not self.ignore_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            return Response(
                data[start:],
                status=206,
                headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
            )
        if path in self.truncate and request.method == "GET":
            n = self.truncate.pop(path)

            # Announce the whole file, send the first n bytes, close the connection.
            return Response(
                iter([data[:n]]),
                headers={"Content-Length": str(len(data)), "Connection": "close"},
            )
        return Response(data)

    def gets(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET"]


@pytest.fixture
def mirror(httpserver, served) -> Mirror:
    return Mirror(httpserver, served)


def run_cli(argv: list[str]) -> int:
    assert cli.parser().parse_args(argv).func is cli.cmd_fetch
    return cli.main(argv)


def argv(mirror: Mirror, dest: Path, *extra: str) -> list[str]:
    return [
        "fetch", "roadmap", "--mirror", mirror.url, "--dest", str(dest),
        "--epigenomes", "all", "--marks", *MARKS, "--no-progress", "--retries", "0", *extra,
    ]  # fmt: skip


def arcsinh_mean(path: Path, chrom: str, start: int, end: int) -> float:
    bw = pyBigWig.open(str(path))
    size = bw.chroms(chrom)
    lo, hi = max(start, 0), min(end, size)
    vals = np.nan_to_num(np.asarray(bw.values(chrom, lo, hi), dtype=np.float64))
    bw.close()
    return float(np.arcsinh(vals).mean())


def test_plan__mirror_layout_and_public_urls(monkeypatch):
    monkeypatch.delenv(roadmap.MIRROR_ENV, raising=False)
    plan = roadmap.plan(["E003"], ["H3K4me3"], genome=True, annotation="gencode-v19", mirror=None)
    urls = [i.url for i in plan.items()]
    assert urls == [
        "https://egg2.wustl.edu/roadmap/data/byDataType/rna/expression/57epigenomes.RPKM.pc.gz",
        "https://ftp.ebi.ac.uk/pub/databases/gencode/Gencode_human/release_19/"
        "gencode.v19.annotation.gtf.gz",
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.fa.gz",
        "https://egg2.wustl.edu/roadmap/data/byFileType/signal/consolidated/macs2signal/pval/"
        "E003-H3K4me3.pval.signal.bigwig",
    ]
    monkeypatch.setenv(roadmap.MIRROR_ENV, "http://lab/mirror/")
    base = roadmap.mirror_base(None)
    plan = roadmap.plan(["E003"], ["H3K4me3"], genome=True, annotation="gencode-v10", mirror=base)
    assert [i.url for i in plan.items()] == [
        f"http://lab/mirror/{RPKM}",
        "http://lab/mirror/gencode/Gencode_human/release_10/gencode.v10.annotation.gtf.gz",
        "http://lab/mirror/hg19/hg19.fa.gz",
        f"http://lab/mirror/{BW}/E003-H3K4me3.pval.signal.bigwig",
    ]


def test_fetch__then_build_matches_naive(mirror, served, tmp_path, capsys):
    from pitfall import featurize, open_cube

    dest = tmp_path / "roadmap"
    assert run_cli(argv(mirror, dest)) == 0
    m = load_manifest(dest / "manifest.toml")
    assert m.chroms == ["chr1", "chr2"]  # the autosomes of the tiny annotation and genome
    assert list(m.cell_types) == list(EIDS)  # 'all' = the RPKM header without E000
    assert m.cell_types["E003"].name == "H1" and m.cell_types["E003"].group == "ES"
    assert (m.upstream, m.downstream, m.threshold, m.target_kind) == (2000, 0, 0.5, "expression")
    assert m.marks == list(MARKS) and m.fasta == dest / "hg19" / "hg19.fa"
    assert not (dest / "hg19" / "hg19.fa.gz").exists()
    assert (dest / "hg19" / "hg19.fa").read_bytes() == gzip.decompress(served["hg19/hg19.fa.gz"])
    for f in m.input_files():
        assert f.is_file()
    sums = (dest / "checksums.tsv").read_text().splitlines()
    assert sums[0] == "path\tbytes\tsha256\turl" and len(sums) == 1 + 3 + len(EIDS) * len(MARKS)

    store = tmp_path / "cube"
    featurize.build(dest / "manifest.toml", store, workers=1, processes=False, progress=False)
    ds = open_cube(store)
    assert ds.sizes["locus"] == 5 and ds.sizes["cell_type"] == 3
    rpkm = {}
    for line in gzip.decompress(served[RPKM]).decode().splitlines()[1:]:
        f = line.rstrip("\t").split("\t")
        rpkm[f[0]] = dict(zip(("E000",) + EIDS, map(float, f[1:]), strict=True))
    for gid, chrom, s, e, strand in GENES[:5]:
        lo, hi = (s - 1 - 2000, s - 1) if strand == "+" else (e, e + 2000)
        locus = int(np.flatnonzero(ds["name"].values == gid)[0])
        # the locus inside its chromosome; the window read, un-clipped, in its own coordinate
        assert (str(ds["chrom"].values[locus]), int(ds["start"].values[locus])) == (
            chrom,
            max(lo, 0),
        )
        window = ds["window_start"] if "window_start" in ds.coords else ds["start"]
        assert int(window.values[locus]) == lo
        for ct in ("E003", "E005"):
            for mk in MARKS:
                want = arcsinh_mean(
                    dest / "bigwig" / f"{ct}-{mk}.pval.signal.bigwig", chrom, lo, hi
                )
                got = float(ds.signal.sel(cell_type=ct, mark=mk).values[locus])
                assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
            label = float(ds.label.sel(cell_type=ct).values[locus])
            assert label == float(rpkm[gid.split(".")[0]][ct] > 0.5)


def test_fetch__second_run_downloads_nothing(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    assert run_cli(argv(mirror, dest)) == 0
    before = (dest / "manifest.toml").read_text()
    mirror.requests.clear()
    assert run_cli(argv(mirror, dest)) == 0
    assert mirror.requests == []
    assert (dest / "manifest.toml").read_text() == before
    assert "0 downloaded, 9 already there" in capsys.readouterr().out


def _leave_part(dest: Path, name: str, content: bytes) -> Path:
    """The ``.part`` file an interrupted download of bigWig ``name`` leaves in ``dest``."""
    part = dest / "bigwig" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(content)
    return part


def test_download__partial_file_resumes_with_range(mirror, served, tmp_path):
    dest = tmp_path / "d"
    name = "E004-H3K27me3.pval.signal.bigwig"
    data = served[f"{BW}/{name}"]
    part = _leave_part(dest, name, data[: len(data) // 2])
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    ranged = [r for r in mirror.gets() if r[1].endswith(name)]
    assert ranged == [("GET", f"{BW}/{name}", f"bytes={len(data) // 2}-")]
    assert (dest / "bigwig" / name).read_bytes() == data
    assert not part.exists()
    sums = (dest / "checksums.tsv").read_text()
    assert hashlib.sha256(data).hexdigest() in sums


def test_download__dropped_connection_keeps_part_and_next_run_resumes(
    mirror, served, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(download, "CHUNK", 256)  # small blocks: a tiny file is split
    dest = tmp_path / "d"
    name = "E003-H3K4me3.pval.signal.bigwig"
    data = served[f"{BW}/{name}"]
    mirror.truncate[f"{BW}/{name}"] = 1000
    assert run_cli(argv(mirror, dest, "--no-genome")) == 1
    err = capsys.readouterr().err
    assert f"{mirror.url}/{BW}/{name}" in err and "E003 H3K4me3" in err and "resume" in err
    kept = (dest / "bigwig" / f"{name}.part").stat().st_size
    assert 0 < kept <= 1000
    m = load_manifest(dest / "manifest.toml")  # restricted to the complete epigenomes
    assert list(m.cell_types) == ["E004", "E005"]
    mirror.requests.clear()
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    assert mirror.gets() == [("GET", f"{BW}/{name}", f"bytes={kept}-")]
    assert (dest / "bigwig" / name).read_bytes() == data
    assert list(load_manifest(dest / "manifest.toml").cell_types) == list(EIDS)


def test_download__server_ignoring_range_restarts(mirror, served, tmp_path):
    dest = tmp_path / "d"
    name = "E005-H3K4me3.pval.signal.bigwig"
    data = served[f"{BW}/{name}"]
    _leave_part(dest, name, b"garbage that is not the start of the file")
    mirror.ignore_range = True
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    assert (dest / "bigwig" / name).read_bytes() == data


def test_fetch__404_names_url_and_epigenome_rest_continue(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    missing = f"{BW}/E004-H3K27me3.pval.signal.bigwig"
    del mirror.files[missing]
    assert run_cli(argv(mirror, dest)) == 1
    cap = capsys.readouterr()
    assert "1 failed" in cap.err
    assert f"{mirror.url}/{missing}: HTTP 404" in cap.err and "E004 H3K27me3" in cap.err
    assert "left out: E004" in cap.out
    m = load_manifest(dest / "manifest.toml")
    assert list(m.cell_types) == ["E003", "E005"]
    for f in m.input_files():
        assert f.is_file()
    assert (dest / "bigwig" / "E005-H3K27me3.pval.signal.bigwig").is_file()  # later ones went on


def test_fetch__shared_file_missing_leaves_no_manifest(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    assert (dest / "manifest.toml").is_file()
    # Asking for the genome now, which the mirror lacks: the old manifest must go.
    del mirror.files["hg19/hg19.fa.gz"]
    assert run_cli(argv(mirror, dest)) == 1
    cap = capsys.readouterr()
    assert f"{mirror.url}/hg19/hg19.fa.gz: HTTP 404" in cap.err and "genome" in cap.err
    assert "no manifest written" in cap.out
    assert not (dest / "manifest.toml").exists()


def test_fetch__all_without_rpkm_fetches_no_bigwigs(mirror, tmp_path, capsys):
    del mirror.files[RPKM]
    assert run_cli(argv(mirror, tmp_path / "d", "--no-genome")) == 1
    assert not any("bigwig" in r[1] for r in mirror.requests)
    assert not (tmp_path / "d" / "manifest.toml").exists()


def test_download__source_md5_mismatch_removes_file_and_names_url(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    mirror.files["hg19/md5sum.txt"] = b"0123456789abcdef0123456789abcdef  hg19.fa.gz\n"
    assert run_cli(argv(mirror, dest)) == 1
    err = capsys.readouterr().err
    assert f"{mirror.url}/hg19/hg19.fa.gz" in err
    assert "md5:0123456789abcdef0123456789abcdef" in err
    assert not any(p.name.startswith("hg19.fa") for p in (dest / "hg19").iterdir())
    assert not (dest / "manifest.toml").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_download__recorded_checksum_mismatch_refetches(mirror, served, tmp_path, capsys, damage):
    dest = tmp_path / "d"
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    name = "E003-H3K27me3.pval.signal.bigwig"
    path = dest / "bigwig" / name
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-10]
    path.write_bytes(bytes(data))
    capsys.readouterr()
    mirror.requests.clear()
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    out = capsys.readouterr().out
    url = f"{mirror.url}/{BW}/{name}"
    expected = hashlib.sha256(served[f"{BW}/{name}"]).hexdigest()
    assert url in out
    assert (expected if damage == "flip" else f"{len(served[f'{BW}/{name}']):,} recorded") in out
    assert [r[1] for r in mirror.gets()] == [f"{BW}/{name}"]
    assert path.read_bytes() == served[f"{BW}/{name}"]


def test_fetch__unknown_epigenome_left_out(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    args = argv(mirror, dest, "--no-genome")
    args[args.index("all")] = "E003,e999"
    assert run_cli(args) == 0
    assert "['E999'] are not columns of the RPKM matrix" in capsys.readouterr().out
    assert list(load_manifest(dest / "manifest.toml").cell_types) == ["E003"]
    assert not any("E999" in r[1] for r in mirror.requests)


def test_fetch__dry_run_lists_sizes_and_downloads_nothing(mirror, served, tmp_path, capsys):
    dest = tmp_path / "d"
    del mirror.files[f"{BW}/E005-H3K4me3.pval.signal.bigwig"]
    assert run_cli(argv(mirror, dest, "--dry-run")) == 1
    out = capsys.readouterr().out
    print(out)
    assert mirror.gets() == [] and not dest.exists()
    assert {r[0] for r in mirror.requests} == {"HEAD"}
    # 'all' without the matrix: the built-in table of 56 epigenomes
    assert "56 epigenomes of the built-in table" in out
    assert f"{mirror.url}/{RPKM}" in out and f"{mirror.url}/hg19/hg19.fa.gz" in out
    assert "MISSING" in out and "free at" in out and "to download" in out
    n = 3 + 56 * len(MARKS)
    assert f"{n} files, " in out


def test_fetch__dry_run_after_fetch_uses_matrix_header(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    assert run_cli(argv(mirror, dest, "--no-genome")) == 0
    capsys.readouterr()
    assert run_cli(argv(mirror, dest, "--no-genome", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert f"{2 + len(EIDS) * len(MARKS)} files" in out and "to download: 0 B" in out
    assert out.count(" have ") == 2 + len(EIDS) * len(MARKS)


def test_fetch__manifest_is_valid_toml_with_expected_keys(mirror, tmp_path):
    dest = tmp_path / "d"
    assert run_cli(argv(mirror, dest, "--no-genome", "--annotation", "gencode-v19")) == 0
    raw = tomllib.loads((dest / "manifest.toml").read_text())
    assert "sequence" not in raw
    assert raw["loci"] == {"tss": GTF.replace("gencode/Gencode_human/release_19", "gencode"),
                           "upstream": 2000, "downstream": 0}  # fmt: skip
    assert raw["target"] == {"kind": "expression", "table": "rna/57epigenomes.RPKM.pc.gz",
                             "threshold": 0.5}  # fmt: skip


def test_plan__files_by_name(monkeypatch):
    monkeypatch.delenv(roadmap.MIRROR_ENV, raising=False)
    plan = roadmap.plan(["E003", "E004"], MARKS, genome=False, annotation="gencode-v10",
                        mirror="http://m")  # fmt: skip
    assert plan.genome is None and plan.shared == [plan.rpkm, plan.annotation]
    assert plan.rpkm.url == f"http://m/{RPKM}" and plan.rpkm.local == "rna/57epigenomes.RPKM.pc.gz"
    assert plan.annotation.local == "gencode/gencode.v10.annotation.gtf.gz"
    assert plan.annotation.md5_list == "http://m/gencode/Gencode_human/release_10/MD5SUMS"
    item = plan.bigwigs["E004", "H3K27me3"]
    assert item.url == f"http://m/{BW}/E004-H3K27me3.pval.signal.bigwig"
    assert item.local == "bigwig/E004-H3K27me3.pval.signal.bigwig" and item.label == "E004 H3K27me3"
    assert len(plan.items()) == 2 + 2 * len(MARKS)


def test_write_manifest__one_writer_for_both_callers(tmp_path):
    with_signal = roadmap.write_manifest(
        tmp_path / "a" / "manifest.toml",
        {"E003": ("H1", "ES")},
        annotation="/data/genes.gtf.gz",
        rpkm="/data/rpkm.gz",
        marks=["H3K4me3"],
        bigwig_dir="bw",
        fasta="/data/hg19.fa",
    )
    raw = tomllib.loads(with_signal.read_text())
    assert raw["chroms"] == list(AUTOSOMES) == [f"chr{i}" for i in range(1, 23)]
    assert raw["loci"] == {"tss": "/data/genes.gtf.gz", "upstream": 2000, "downstream": 0}
    assert raw["target"] == {"kind": "expression", "table": "/data/rpkm.gz", "threshold": 0.5}
    assert raw["sequence"] == {"fasta": "/data/hg19.fa"}
    assert raw["cell_types"]["E003"] == {
        "name": "H1", "group": "ES", "signal": {"H3K4me3": "bw/E003-H3K4me3.pval.signal.bigwig"}
    }  # fmt: skip
    labels_only = roadmap.write_manifest(
        tmp_path / "b" / "manifest.toml", {"E003": ("H1", "ES")}, annotation="g", rpkm="r"
    )
    raw = tomllib.loads(labels_only.read_text())
    assert "signal" not in raw and "sequence" not in raw
    assert raw["cell_types"]["E003"] == {"name": "H1", "group": "ES"}
    with pytest.raises(ValueError, match="needs both marks and bigwig_dir"):
        roadmap.write_manifest(tmp_path / "c.toml", {}, annotation="g", rpkm="r", marks=["H3K4me3"])


def test_cli__fetch_defaults_to_the_core_marks(tmp_path):
    args = cli.parser().parse_args(
        ["fetch", "roadmap", "--dest", str(tmp_path), "--epigenomes", "E003"]
    )
    assert (
        args.marks == list(CORE_MARKS) == ["H3K4me3", "H3K4me1", "H3K36me3", "H3K27me3", "H3K9me3"]
    )
