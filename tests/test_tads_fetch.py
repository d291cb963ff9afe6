"""`pitfall fetch tads --compendium dixon2015` against a local HTTP mirror serving generated
files in the 3D Genome Browser's layout, then `pitfall build` of the boundary cube, checked
against boundaries placed by hand from the served domain lists."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from werkzeug import Request, Response

from pitfall import cli
from pitfall.datasets import tads
from pitfall.manifest import load_manifest

pytest.importorskip("pooch")

ARCHIVE = "3dgenome/downloads/hg19.TADs.zip"
SIZES = "hg19/hg19.chrom.sizes"
BIN = tads.BIN_SIZE
# UCSC's order (by size), with a non-autosome and an alternative haplotype, as the real file.
CHROM_SIZES = {
    "chr1": 2_000_000,
    "chr2": 1_600_000,
    "chr3": 1_210_000,
    "chrX": 900_000,
    "chr6_ssto_hap7": 300_000,
}
AUTOSOMES = ("chr1", "chr2", "chr3")


def _domains(rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """Domains as the DI/HMM caller writes them: 40 kb multiples with gaps, a few ends off
    the bin edges (to exercise the end rule), one on chrX (not a locus chromosome)."""
    rows = []
    for chrom in AUTOSOMES:
        pos = int(rng.integers(0, 4)) * BIN
        while True:
            length = int(rng.integers(3, 12)) * BIN + (
                int(rng.integers(1, BIN)) if rng.random() < 0.2 else 0
            )
            if pos + length > CHROM_SIZES[chrom]:
                break
            rows.append((chrom, pos, pos + length))
            pos += length + int(rng.integers(0, 3)) * BIN
    rows.append(("chrX", 80_000, 400_000))
    return rows


def _text(rows: list[tuple[str, int, int]], chr_prefix: bool = True) -> bytes:
    return "".join(
        f"{c if chr_prefix else c.removeprefix('chr')}\t{s}\t{e}\n" for c, s, e in rows
    ).encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hg19/", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def truth() -> dict[str, list[tuple[str, int, int]]]:
    """The domains of each line, by cell type id."""
    rng = np.random.default_rng(11)
    return {ct: _domains(rng) for ct in tads.DIXON2015}


def _members(truth, drop: str | None = None) -> dict[str, bytes]:
    """The archive's entries: the seven lists in a folder (one with the ``Dixon_2015``
    spelling, one without ``chr``) and lines the compendium does not use."""
    members = {}
    for ct, line in tads.DIXON2015.items():
        if ct == drop:
            continue
        name = line.member.replace("Dixon2015", "Dixon_2015") if ct == "E007" else line.member
        members[f"hg19/{name}"] = _text(truth[ct], chr_prefix=ct != "E005")
    members["hg19/K562_Lieberman-raw_TADs.txt"] = _text([("chr1", 0, 400_000)])
    members["hg19/Liver_STL011_Leung2015-raw_TADs.txt"] = _text([("chr2", 0, 400_000)])
    return members


def _sizes() -> bytes:
    return "".join(f"{c}\t{n}\n" for c, n in CHROM_SIZES.items()).encode()


class Mirror:
    """Serves ``files`` (GET and HEAD) from pytest-httpserver on 127.0.0.1; logs requests."""

    def __init__(self, httpserver, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str]] = []
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.handle)
        self.url = httpserver.url_for("/").rstrip("/")

    def handle(self, request: Request) -> Response:
        path = request.path.lstrip("/")
        self.requests.append((request.method, path))
        if path not in self.files:
            return Response("not found", status=404)
        return Response(self.files[path])


@pytest.fixture
def mirror(httpserver, truth) -> Mirror:
    return Mirror(httpserver, {ARCHIVE: _zip(_members(truth)), SIZES: _sizes()})


def fetch_argv(mirror: Mirror, dest: Path, *extra: str) -> list[str]:
    return [
        "fetch", "tads", "--compendium", "dixon2015", "--mirror", mirror.url,
        "--dest", str(dest), "--no-progress", "--retries", "0", *extra,
    ]  # fmt: skip


def run_cli(argv: list[str]) -> int:
    assert cli.parser().parse_args(argv).func is cli.cmd_fetch_tads
    return cli.main(argv)


def naive_boundaries(rows: list[tuple[str, int, int]]) -> dict[str, np.ndarray]:
    """Per autosome, 1 in each 40 kb bin holding a domain's first or last base."""
    out = {c: np.zeros(-(-CHROM_SIZES[c] // BIN), np.float32) for c in AUTOSOMES}
    for chrom, s, e in rows:
        if chrom in out:
            out[chrom][s // BIN] = 1
            out[chrom][(e - 1) // BIN] = 1
    return out


def test_plan__public_urls_and_mirror_layout(monkeypatch) -> None:
    monkeypatch.delenv("PITFALL_MIRROR", raising=False)
    items = tads.plan(None)
    assert items["archive"].url == "http://3dgenome.fsm.northwestern.edu/downloads/hg19.TADs.zip"
    assert items["sizes"].url == (
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.chrom.sizes"
    )
    items = tads.plan("http://lab/mirror")
    assert [i.url for i in items.values()] == [
        f"http://lab/mirror/{ARCHIVE}",
        f"http://lab/mirror/{SIZES}",
    ]
    assert [i.local for i in items.values()] == ["downloads/hg19.TADs.zip", SIZES]


@pytest.mark.parametrize(
    ("entry", "found"),
    [
        ("H1-ESC_Dixon2015-raw_TADs.txt", True),
        ("hg19/H1-ESC_Dixon2015-raw_TADs.txt", True),
        ("hg19/H1-ESC_Dixon_2015-raw_TADs.txt", True),
        ("HG19/h1-esc_dixon2015-RAW_TADS.TXT", True),
        ("hg19/H1-MES_Dixon2015-raw_TADs.txt", False),
        ("hg19/H1-ESC_Dixon2015-raw_TADs.txt/", False),
    ],
)
def test_archive_member__spellings_and_folders(entry: str, found: bool) -> None:
    got = tads.archive_member(["README.txt", entry], "H1-ESC_Dixon2015-raw_TADs.txt")
    assert got == (entry if found else None)


def test_fetch_tads__then_build_matches_naive(mirror, truth, tmp_path, capsys) -> None:
    from pitfall import featurize, open_cube

    dest = tmp_path / "tads"
    assert run_cli(fetch_argv(mirror, dest)) == 0
    assert "manifest:" in capsys.readouterr().out
    m = load_manifest(dest / "manifest.toml")
    assert m.chroms == list(AUTOSOMES)  # the autosomes of the sizes file
    assert list(m.cell_types) == ["E003", "E004", "E005", "E006", "E007", "E017", "E116"]
    assert m.cell_types["E003"].name == "H1" and m.cell_types["E116"].name == "GM12878"
    assert m.target_kind == "domains" and m.bin_size == BIN
    for ct, line in tads.DIXON2015.items():
        extracted = dest / "tads" / "dixon2015" / line.member
        assert extracted.read_bytes() == _text(truth[ct])  # E005's names given chr
    sums = (dest / "checksums.tsv").read_text().splitlines()
    assert sums[0] == "path\tbytes\tsha256\turl" and len(sums) == 1 + 2

    store = tmp_path / "cube"
    featurize.build(dest / "manifest.toml", store, workers=1, processes=False, progress=False)
    ds = open_cube(store)
    n_bins = sum(-(-CHROM_SIZES[c] // BIN) for c in AUTOSOMES)
    assert ds.sizes["locus"] == n_bins and ds.sizes["cell_type"] == 7
    chrom = np.array([str(c) for c in ds["chrom"].values])
    for ct in tads.DIXON2015:
        want = naive_boundaries(truth[ct])
        got = ds.label.sel(cell_type=ct).values
        for c in AUTOSOMES:
            np.testing.assert_array_equal(got[chrom == c], want[c], err_msg=f"{ct} {c}")
    # the paper's TAD split on it: H1 (E003) is the target, GM12878 validates by name
    from pitfall import tasks

    split = tasks.get_task("tad").split(ds, "cross-cell-type", "E003")
    assert split.valid_cell_types == ("E116",)
    assert "E003" not in split.train_cell_types and len(split.train_cell_types) == 5


def test_fetch_tads__second_run_downloads_nothing(mirror, tmp_path, capsys) -> None:
    dest = tmp_path / "d"
    assert run_cli(fetch_argv(mirror, dest)) == 0
    before = (dest / "manifest.toml").read_text()
    mirror.requests.clear()
    assert run_cli(fetch_argv(mirror, dest)) == 0
    assert mirror.requests == []
    assert (dest / "manifest.toml").read_text() == before
    assert "0 downloaded, 2 already there" in capsys.readouterr().out


def test_fetch_tads__missing_member_leaves_the_line_out(httpserver, truth, tmp_path, capsys):
    mirror = Mirror(httpserver, {ARCHIVE: _zip(_members(truth, drop="E005")), SIZES: _sizes()})
    dest = tmp_path / "d"
    assert run_cli(fetch_argv(mirror, dest)) == 1
    captured = capsys.readouterr()
    assert "no member H1-TRO_Dixon2015-raw_TADs.txt (E005" in captured.err
    assert "left out: E005 (H1 BMP4 Derived Trophoblast)" in captured.out
    m = load_manifest(dest / "manifest.toml")
    assert list(m.cell_types) == ["E003", "E004", "E006", "E007", "E017", "E116"]


def test_fetch_tads__an_html_page_for_the_archive_writes_no_manifest(
    httpserver, tmp_path, capsys
) -> None:
    mirror = Mirror(httpserver, {ARCHIVE: b"<html>moved</html>", SIZES: _sizes()})
    dest = tmp_path / "d"
    (dest).mkdir()
    (dest / "manifest.toml").write_text("# stale\n")
    assert run_cli(fetch_argv(mirror, dest)) == 1
    err = capsys.readouterr().err
    assert "hg19.TADs.zip: not a zip archive" in err and "fetch again" in err
    assert not (dest / "manifest.toml").exists()


def test_fetch_tads__missing_archive_names_its_url(httpserver, tmp_path, capsys) -> None:
    mirror = Mirror(httpserver, {SIZES: _sizes()})
    assert run_cli(fetch_argv(mirror, tmp_path / "d")) == 1
    err = capsys.readouterr().err
    assert f"{mirror.url}/{ARCHIVE}" in err
    assert not (tmp_path / "d" / "manifest.toml").exists()


def test_fetch_tads__unknown_compendium_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="dixon2015"):
        tads.fetch(tmp_path, "rao2014")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["fetch", "tads", "--compendium", "rao2014", "--dest", str(tmp_path)])
    assert exit_.value.code == 2


def test_real_tads_pipeline__on_a_fetched_compendium(mirror, truth, tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    from sklearn.metrics import average_precision_score

    dest = tmp_path / "tads"
    assert run_cli(fetch_argv(mirror, dest)) == 0
    script = Path(__file__).resolve().parents[1] / "pipelines" / "real_tads.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(dest), "--compendium", "dixon2015", "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = json.loads((tmp_path / "out" / "results" / "real_tads_dixon2015.json").read_text())
    assert set(found) == {"cross-cell-type", "hybrid"}
    # hybrid: H1 (E003) on chr1, by hand from the served domain lists
    label = {ct: naive_boundaries(rows)["chr1"].astype(np.float64) for ct, rows in truth.items()}
    others = [ct for ct in truth if ct != "E003"]  # the baseline averages every other line
    want = {
        "random": float(label["E003"].mean()),
        "E017 alone": average_precision_score(label["E003"], label["E017"]),
        "average activity": average_precision_score(
            label["E003"], np.mean([label[ct] for ct in others], axis=0)
        ),
    }
    got = {row["predictor"]: row["ap"] for row in found["hybrid"]}
    assert got == pytest.approx(want, abs=1e-9)
