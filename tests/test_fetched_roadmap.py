"""From download to figure: a generated Roadmap mirror on 127.0.0.1, `pitfall fetch roadmap`,
then `pitfall report real` on the fetched folder, its findings against the generated truth.

The mirror holds a synthetic compendium (:mod:`pitfall.synth`) in the public layout and
formats (:func:`pitfall.datasets.roadmap.write_mirror`): the RPKM matrix with E000 and the
stray tab, a GENCODE-named GTF, UCSC's gzipped FASTA with its md5sum.txt, MACS2-named
bigWigs. Its truth plants a locus-constant propensity (what the average activity and locus
memorisation recover) and marks that follow each cell type's activity.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import cli, cube, sweep  # noqa: E402
from pitfall.datasets import roadmap  # noqa: E402
from pitfall.experiments import real_fetched, real_labels  # noqa: E402
from pitfall.synth import SynthCompendium, synthesize  # noqa: E402

pytest.importorskip("pooch")

MARKS = ("H3K4me3", "H3K27me3", "H3K36me3")
IMPUTATION_CHROMS = ("chr2", "chr3")

#: Every family of the paper, each at the ends of a small range, on a short recipe.
TINY = real_fetched.FetchedPlan(
    training={"batches_per_epoch": 16, "max_epochs": 3, "patience": 1, "valid_size": 128,
              "sample_size": 1000},
    models=[
        {"family": "dense", "inputs": "signal", "units": [[2], [64]]},
        {"family": "seq_dense", "units": [[64]]},
        {"family": "seq_conv", "filters": [[2]], "units": [[4]]},
        {"family": "combined", "filters": [1], "seq_units": [1], "units": [2], "joint_units": 1},
        {"family": "combined", "filters": [2], "seq_units": [4], "units": [4], "joint_units": 4},
        {"family": "dense", "inputs": "random", "units": [[1], [64]]},
        {"family": "seq_dense", "permuted": True, "units": [[1], [64]]},
    ],
    gbm=[{"family": "xgboost", "inputs": i, "n_trees": [1, 8], "max_depth": 3}
         for i in ("signal", "random")],
    umap=False,
    imputation_size="quick",
    imputation_bin=2000,
)  # fmt: skip

FIGURES = {
    "figure1_def_expression.png",
    "controls.png",
    "figure_s1_trees.png",
    "figure_s4_partitioned.png",
    "figure_s5_baseline_vs_similarity.png",
    "preprint_figure_s1_pca_umap.png",
    "imputation.png",
}


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` answered 206, as the public servers do."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not m or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start = int(m.group(1))
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        import io

        return io.BytesIO(data[start:])


@pytest.fixture(scope="module")
def compendium(tmp_path_factory: pytest.TempPathFactory) -> SynthCompendium:
    """A few small chromosomes, ten epigenomes (E003 and the task's validation four among
    them), three marks."""
    root = tmp_path_factory.mktemp("generated")
    return synthesize(root / "synth", "tiny", n_cell_types=10, n_genes=300,
                      chrom_length=1_000_000, marks=MARKS)  # fmt: skip


@pytest.fixture(scope="module")
def mirror(compendium: SynthCompendium, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The mirror's base URL on 127.0.0.1."""
    www = roadmap.write_mirror(compendium, tmp_path_factory.mktemp("www"))

    def handler(*args, **kw):  # type: ignore[no-untyped-def]
        return _RangeHandler(*args, directory=str(www), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _fetch(url: str, dest: Path, *extra: str) -> int:
    return cli.main(["fetch", "roadmap", "--mirror", url, "--dest", str(dest), "--epigenomes",
                     "all", "--marks", *MARKS, "--no-progress", "--retries", "0", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def fetched(mirror: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fetched")
    assert _fetch(mirror, dest) == 0
    return dest


@pytest.fixture(scope="module")
def report(fetched: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    real_labels.run(fetched, out, fetched_plan=TINY, imputation_chroms=IMPUTATION_CHROMS,
                    workers=0, progress=False)  # fmt: skip
    return out


def _findings(report: Path) -> dict:
    return json.loads((report / "findings.json").read_text())


def test_fetched_manifest__the_fetch_is_complete_the_shared_folder_is_not(
    fetched: Path, shared_data: Path
) -> None:
    assert roadmap.fetched_manifest(fetched) == (fetched / "manifest.toml", [])
    manifest, missing = roadmap.fetched_manifest(shared_data)
    assert manifest is None
    assert any("manifest.toml" in m for m in missing) and "hg19/hg19.fa" in missing


def test_fetched_manifest__without_genome_names_the_fasta(mirror: str, tmp_path: Path) -> None:
    assert _fetch(mirror, tmp_path / "d", "--no-genome") == 0
    manifest, missing = roadmap.fetched_manifest(tmp_path / "d")
    assert manifest is None and missing == ["hg19/hg19.fa (the fetch ran with --no-genome)"]


def test_report__every_family_and_every_figure(report: Path) -> None:
    found = _findings(report)
    assert found["report"]["kind"] == "full"
    assert sorted(p.name for p in (report / "figures").glob("*.png")) == sorted(FIGURES)
    table = sweep.read_results(report / "results")
    assert (table["status"] == "ok").all()
    families = set(zip(table["family"], table["inputs"], strict=True))
    assert {("dense", "signal"), ("seq_dense", "sequence"), ("seq_conv", "sequence"),
            ("dense", "random"), ("seq_dense", "permuted"),
            ("xgboost", "signal")} <= families  # fmt: skip
    assert "combined" in set(table["family"])
    assert set(table["setting"]) == {"cross-chromosome", "cross-cell-type", "hybrid"}
    html = (report / "report.html").read_text()
    assert "Full report:" in html and html.count("data:image/png;base64,") == len(FIGURES)


def test_report__average_activity_against_the_generated_truth(
    report: Path, compendium: SynthCompendium
) -> None:
    """The baseline's AP is the naive one on the truth's activity, and the planted
    locus-constant propensity makes it beat every model on unseen chromosomes."""
    found = _findings(report)
    truth = compendium.truth()
    ds = cube.open_cube(report / "store" / "roadmap_fetched")
    order = {g: i for i, g in enumerate(truth["gene_id"].tolist())}
    genes = [order[str(n)] for n in ds["name"].values]
    cts = truth["cell_types"].tolist()
    activity = truth["activity"][:, genes].astype(float)  # (C, loci of the cube)
    assert np.array_equal(ds["label"].sel(cell_type=cts).values, activity)
    target, others = cts.index("E003"), [i for i, c in enumerate(cts) if c != "E003"]
    chrom = ds["chrom"].values
    for setting, loci in (("hybrid", chrom == "chr1"), ("cross-cell-type", chrom != "chr1")):
        naive = average_precision_score(
            activity[target, loci], activity[others][:, loci].mean(axis=0)
        )
        assert found["expression"][setting]["average_activity_ap"] == pytest.approx(naive)
    hybrid = found["expression"]["hybrid"]
    assert hybrid["baseline_beats_all"] and hybrid["average_activity_ap"] > 0.9
    # memorisation: the locus-identity controls climb across cell types, not on unseen
    # chromosomes, where they stay near the prevalence
    for control in ("random",):
        cct = found["controls"]["cross-cell-type"][control]
        hyb = found["controls"]["hybrid"][control]
        assert cct["ap_largest"] - hyb["ap_largest"] > 0.1
        assert abs(hyb["ap_largest"] - hyb["random"]) < 0.1
    cct = found["controls"]["cross-cell-type"]["permuted"]
    assert cct["ap_largest"] > found["controls"]["hybrid"]["permuted"]["ap_largest"] + 0.1


def test_report__epigenomic_models_and_pca_read_the_planted_marks(report: Path) -> None:
    found = _findings(report)
    signal = found["expression"]["cross-chromosome"]["signal"]
    assert signal["ap_max"] > signal["random"] + 0.2  # marks follow the target's activity
    emb = found["embedding"]
    assert (emb["n_loci"], emb["features"]) == (300, len(MARKS))
    ds = cube.open_cube(report / "store" / "roadmap_fetched")
    # PC1 of the standardised marks separates active from inactive loci (naive SVD)
    x = ds["signal"].sel(cell_type="E003").values.astype(float)
    z = (x - x.mean(0)) / x.std(0)
    pc1 = np.linalg.svd(z, full_matrices=False)[0][:, 0]
    y = ds["label"].sel(cell_type="E003").values
    assert max(roc_auc_score(y, pc1), roc_auc_score(y, -pc1)) > 0.8
    tests = found["partitioned"]
    assert tests["epigenomic > sequence"]["groups"] >= 3
    assert tests["epigenomic > sequence"]["n_a"] == 2


def test_imputation_cube__bins_signal_and_labels_against_naive(
    report: Path, fetched: Path, compendium: SynthCompendium
) -> None:
    ds = cube.open_cube(report / "store" / "imputation_fetched")
    sizes = dict(zip(compendium.params.chroms, compendium.params.chrom_lengths, strict=True))
    size = TINY.imputation_bin
    assert ds.sizes["locus"] == sum(-(-sizes[c] // size) for c in IMPUTATION_CHROMS)
    assert _findings(report)["imputation_cube"]["n_loci"] == ds.sizes["locus"]
    truth = compendium.truth()
    chrom, start = ds["chrom"].values, ds["start"].values
    for ct in ("E003", "E116"):
        c = truth["cell_types"].tolist().index(ct)
        want = np.zeros(ds.sizes["locus"])
        on = (truth["activity"][c] == 1) & np.isin(truth["chrom"], IMPUTATION_CHROMS)
        for ch, tss in zip(truth["chrom"][on], truth["tss"][on], strict=True):
            want[np.flatnonzero((chrom == ch) & (start == tss // size * size))] = 1
        assert np.array_equal(ds["label"].sel(cell_type=ct).values, want)
        bw = pyBigWig.open(str(fetched / "bigwig" / f"{ct}-H3K4me3.pval.signal.bigwig"))
        for i in (0, ds.sizes["locus"] // 2, ds.sizes["locus"] - 1):
            ch, lo, hi = str(chrom[i]), int(start[i]), int(ds["end"].values[i])
            vals = np.nan_to_num(np.asarray(bw.values(ch, lo, hi), dtype=np.float64))
            got = float(ds["signal"].sel(cell_type=ct, mark="H3K4me3").values[i])
            assert got == pytest.approx(float(np.arcsinh(vals).mean()), rel=1e-5, abs=1e-6)
        bw.close()


def test_imputation__average_strong_random_control_blind_on_unseen_chromosomes(
    report: Path,
) -> None:
    """The planted locus-constant component: the Average recovers it in both settings; the
    locus-constant random inputs only where they saw the loci."""
    imp = _findings(report)["imputation"]
    assert set(imp) == {"cross-cell-type", "hybrid"}
    for setting in imp:
        base = imp[setting]["baselines"]
        assert base["track_average"]["gwcorr"] > 0.6
        assert base["track_average"]["mse"] < base["zero"]["mse"]
    assert imp["hybrid"]["families"]["random"]["best_gwcorr"] < 0.3
    assert set(imp["hybrid"]["families"]) == {"impute_dense", "random", "avocado",
                                              "impute_xgboost"}  # fmt: skip


def test_report_real_command__dispatches_on_a_fetched_folder(
    fetched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, str]] = []

    def fake(data, out, *, size, **kw):  # type: ignore[no-untyped-def]
        seen.append((Path(data), size))
        return Path(out) / "report.html"

    monkeypatch.setattr(real_fetched, "run", fake)
    argv = ["report", "real", str(fetched), "--out", str(tmp_path), "--size", "quick"]
    assert cli.main(argv) == 0
    assert seen == [(fetched, "quick")]


def test_pipeline_real_roadmap__imputes_from_the_fetched_folder(
    fetched: Path,
    compendium: SynthCompendium,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pipeline's command line, run in this process (its models are the report's)."""
    import runpy
    import sys

    script = Path(__file__).resolve().parents[1] / "pipelines" / "real_roadmap.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(fetched), "--impute", "H3K27me3",
                                      "--chroms", "chr3", "chr1", "--bin-size", "10000",
                                      "--workers", "0", "--out", str(tmp_path)])  # fmt: skip
    runpy.run_path(str(script), run_name="__main__")
    assert "bins of 10000 bp on chr3, chr1" in capsys.readouterr().out
    assert (tmp_path / "figures" / "imputation.png").stat().st_size > 10_000
    found = json.loads((tmp_path / "results" / "imputation.json").read_text())["findings"]
    ds = cube.open_cube(tmp_path / "store" / "imputation_fetched")
    assert list(ds["mark"].values) == list(MARKS) and set(found) == {"cross-cell-type", "hybrid"}
    sizes = dict(zip(compendium.params.chroms, compendium.params.chrom_lengths, strict=True))
    assert ds.sizes["locus"] == sum(-(-sizes[c] // 10000) for c in ("chr3", "chr1"))
