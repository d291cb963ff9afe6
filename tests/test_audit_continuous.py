"""pitfall.audit.continuous: imputed tracks audited on the tiny synthetic compendium's cube."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import xarray as xr

from pitfall import cli
from pitfall.audit import audit_arrays, json_schema
from pitfall.audit.continuous import audit_track
from pitfall.audit.track_inputs import featurize_track, overlap_mask
from pitfall.cube import open_cube
from pitfall.featurize import build
from pitfall.synth import synthesize
from pitfall.track_metrics import LOWER_IS_BETTER, METRICS, track_metrics_naive

TARGET = "E003"
MARK = "H3K4me3"
BLOCK = 50_000  # the tiny genome's 3 Mb in about 55 blocks (1 Mb would give 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("continuous")
    comp = synthesize(root / "comp", "tiny")
    build(comp.manifest, root / "store", workers=1, processes=False, progress=False)
    ds = open_cube(root / "store").load()
    # The same compendium with E003's H3K4me3 a bigWig without data: unobserved (all NaN).
    sizes = [line.split() for line in (comp.root / "chrom.sizes").read_text().splitlines()]
    empty = root / "empty.bw"
    bw = pyBigWig.open(str(empty), "w")
    bw.addHeader([(c, int(n)) for c, n in sizes])
    bw.close()
    text = comp.manifest.read_text().replace(
        f'{MARK} = "bigwig/{TARGET}-{MARK}.bw"', f'{MARK} = "{empty}"'
    )
    unobserved = comp.root / "manifest_unobserved.toml"
    unobserved.write_text(text)
    build(unobserved, root / "unobserved", workers=1, processes=False, progress=False)
    return {"root": root, "comp": comp, "store": root / "store", "ds": ds,
            "unobserved": root / "unobserved"}  # fmt: skip


def _names(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(ds["name"].values).astype(object)


def _signal(ds: xr.Dataset, mark: str = MARK) -> tuple[np.ndarray, list[str]]:
    """The mark's signal, float64 (cell_type, locus), and the cell types."""
    sig = ds["signal"].sel(mark=mark)
    return np.asarray(sig.values, dtype=np.float64), [str(c) for c in ds["cell_type"].values]


def _table(ds: xr.Dataset, score: np.ndarray) -> pd.DataFrame:
    """A prediction table on the cube's scale: locus names and scores (no cell-type column)."""
    return pd.DataFrame({"locus": _names(ds), "score": score})


def memorising(ds: xr.Dataset, seed: int = 0) -> np.ndarray:
    """What a memorising imputation outputs: the other cell types' mean track plus noise."""
    sig, cts = _signal(ds)
    others = np.delete(sig, cts.index(TARGET), axis=0).mean(axis=0)
    return others + np.random.default_rng(seed).normal(0, 0.01, others.size)


def informed(ds: xr.Dataset, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """A prediction with cell-type-specific information: the observed track plus noise."""
    sig, cts = _signal(ds)
    return sig[cts.index(TARGET)] + np.random.default_rng(seed).normal(0, noise, sig.shape[1])


def _row(report) -> pd.Series:
    return report.to_frame().set_index("cell_type").loc["pooled"]


def _check_rules(report, margin: float = 0.01, threshold: float = 0.8) -> None:
    """The verdict flags follow the documented rules from the reported numbers."""
    row = _row(report)
    mse = row["metrics"]["mse"]
    assert row["mse_gain"] == pytest.approx(mse["average"] - mse["model"])
    assert row["mse_diff"] == pytest.approx(mse["model"] - mse["average"])
    beats = row["mse_gain"] > 0 and row["mse_gain_ci"][0] > 0 and row["mse_relative_gain"] > margin
    within = row["within_group_gain"] > margin and row["within_group_p_adjusted"] < 0.05
    assert report.beats_baseline == beats
    assert report.beats_within_groups == within
    assert report.memorising == (not within and row["spearman_avg"] > threshold)
    assert report.kind == "continuous"


# ------------------------------------------------------------------------- inputs


def test_featurize_track__own_bigwig_gives_the_cube_values(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    path = tiny["comp"].bigwigs[TARGET][MARK]
    values = featurize_track(path, ds)
    cube = ds["signal"].sel(cell_type=TARGET, mark=MARK).values
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, cube)
    # The same runs as a bedGraph: the kernel of the cube's recipe over its runs.
    bedgraph = tmp_path / "own.bedGraph"
    bw = pyBigWig.open(str(path))
    lines = [f"{c}\t{s}\t{e}\t{v!r}\n" for c in bw.chroms() for s, e, v in (bw.intervals(c) or ())]
    bw.close()
    bedgraph.write_text("".join(lines))
    from_bedgraph = featurize_track(bedgraph, ds, chrom_sizes=tiny["comp"].chrom_sizes)
    np.testing.assert_allclose(from_bedgraph, cube, rtol=2e-7, atol=1e-7)


def test_audit_track__own_bigwig_is_perfect(tiny: dict) -> None:
    report = audit_track(tiny["comp"].bigwigs[TARGET][MARK], tiny["store"], cell_type=TARGET,
                         mark=MARK, block_size=BLOCK)  # fmt: skip
    row = _row(report)
    assert row["n_scored"] == tiny["ds"].sizes["locus"]
    assert row["mse_model"] == 0.0
    assert row["gwcorr_model"] == 1.0
    assert row["gwspear_model"] == pytest.approx(1.0)
    assert row["mse_model_ci"] == [0.0, 0.0]
    assert row["within_group_gain"] == pytest.approx(1.0)
    assert report.call == "cell-type-specific"
    assert "track featurized as the cube's signal" in report.settings["loci_by"]
    _check_rules(report)


# ------------------------------------------------------------------------- verdicts


def test_audit_track__average_like_prediction_is_memorising(tiny: dict) -> None:
    ds = tiny["ds"]
    report = audit_track(_table(ds, memorising(ds)), ds, cell_type=TARGET, mark=MARK,
                         block_size=BLOCK)  # fmt: skip
    row = _row(report)
    assert report.call == "memorising" and report.memorising
    assert not report.beats_within_groups and not report.beats_baseline
    assert row["spearman_avg"] > 0.99
    assert abs(row["within_group_gain"]) < 0.15
    assert row["n_groups_significant"] == 0
    assert "likely memorising the mark's average track" in report.verdict
    _check_rules(report)


def test_audit_track__observed_plus_noise_is_cell_type_specific(tiny: dict) -> None:
    ds = tiny["ds"]
    report = audit_track(_table(ds, informed(ds)), ds, cell_type=TARGET, mark=MARK,
                         block_size=BLOCK)  # fmt: skip
    row = _row(report)
    assert not report.memorising
    assert report.call == "cell-type-specific"
    assert row["within_group_gain"] > 0.5 and row["within_group_p_adjusted"] < 0.05
    assert row["n_groups_tested"] == 10
    assert row["n_groups_significant"] == 10
    assert row["mse_gain_ci"][0] > 0
    assert "learns cell-type-specific signal" in report.verdict
    _check_rules(report)


# ------------------------------------------------------------------------- the numbers


def _annotations(ds: xr.Dataset, root: Path) -> tuple[Path, Path]:
    """A small GTF (both strands, gzip) and an enhancer BED placed on the cube's loci."""
    chrom = np.asarray(ds["chrom"].values).astype(object)
    start = np.asarray(ds["start"].values)
    end = np.asarray(ds["end"].values)
    rows = []
    # (GTF is 1-based closed: a 0-based [s, e) gene is written s + 1 .. e.)
    a, b, c = 5, 40, 120
    rows.append((chrom[a], start[a] + 500, start[a] + 800, "+", "gA"))  # body inside locus a
    # minus strand: the TSS is the last base, the promoter the 2 kb after the gene's end, so
    # the promoter of a gene ending 100 bp before locus b covers it (a strand-blind promoter
    # 2 kb before the start would not)
    rows.append((chrom[b], start[b] - 5100, start[b] - 100, "-", "gB"))
    rows.append((chrom[c], end[c] + 50, end[c] + 3050, "+", "gC"))  # promoter covers locus c
    gtf = root / "genes.gtf.gz"
    with gzip.open(gtf, "wt") as fh:
        fh.write("##description: hand-made\n")
        for ch, s, e, strand, gid in rows:
            fh.write(f'{ch}\tt\tgene\t{s + 1}\t{e}\t.\t{strand}\t.\tgene_id "{gid}.1";\n')
    bed = root / "enhancers.bed"
    d, e2 = 200, 300
    bed.write_text(
        f"{chrom[d]}\t{start[d] + 10}\t{start[d] + 20}\tenh1\n"
        f"{chrom[e2]}\t{end[e2] - 1}\t{end[e2] + 500}\tenh2\n"
        f"{chrom[e2]}\t{end[e2] + 100}\t{end[e2] + 200}\tinside_gap\n"
    )
    return gtf, bed


def _naive_masks(ds: xr.Dataset, gtf: Path, bed: Path) -> dict[str, np.ndarray]:
    """Bins overlapping each kind of region, by a loop over bins and regions."""
    chrom = np.asarray(ds["chrom"].values).astype(object)
    start = np.asarray(ds["start"].values)
    end = np.asarray(ds["end"].values)
    genes = pd.read_csv(gtf, sep="\t", comment="#", header=None)
    body, prom = [], []
    for _, g in genes.iterrows():
        s0, e0 = int(g[3]) - 1, int(g[4])
        body.append((g[0], s0, e0))
        prom.append((g[0], s0 - 2000, s0) if g[6] == "+" else (g[0], e0, e0 + 2000))
    enh = [
        (p[0], int(p[1]), int(p[2]))
        for p in (line.split("\t") for line in bed.read_text().splitlines())
    ]

    def mask(regions: list) -> np.ndarray:
        out = np.zeros(chrom.size, bool)
        for i in range(chrom.size):
            out[i] = any(c == chrom[i] and max(s, start[i]) < min(e, end[i]) for c, s, e in regions)
        return out

    return {"gene": mask(body), "prom": mask(prom), "enh": mask(enh)}


def test_audit_track__metrics_equal_the_naive_definitions(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    gtf, bed = _annotations(ds, tmp_path)
    model = informed(ds, seed=3, noise=0.5)
    report = audit_track(_table(ds, model), ds, cell_type=TARGET, mark=MARK, genes=gtf,
                         enhancers=bed, block_size=BLOCK)  # fmt: skip
    row = _row(report)
    masks = _naive_masks(ds, gtf, bed)
    assert masks["gene"][5] and masks["enh"].sum() == 2
    # the minus-strand gene's promoter lies after its end: it covers locus 40
    assert masks["prom"][40] and masks["prom"][120]
    sig, cts = _signal(ds)
    refs = [c for c in cts if c != TARGET]
    ref = sig[[cts.index(c) for c in refs]]
    observed = sig[cts.index(TARGET)]
    average, variance = ref.mean(axis=0), ref.var(axis=0)

    # The most similar cell type: best Pearson correlation on the target's OTHER marks.
    others = [str(m) for m in ds["mark"].values if str(m) != MARK]
    flat = ds["signal"].sel(mark=others).values.reshape(len(cts), -1).astype(np.float64)
    r = {c: np.corrcoef(flat[cts.index(TARGET)], flat[cts.index(c)])[0, 1] for c in refs}
    best = max(r, key=r.__getitem__)
    assert row["most_similar"] == best
    assert row["most_similar_r"] == pytest.approx(r[best], rel=1e-6)
    predictors = {
        "model": model,
        "average": average,
        "most_similar": sig[cts.index(best)],
        "zero": np.zeros_like(observed),
    }
    for key, pred in predictors.items():
        naive = track_metrics_naive(observed, pred, regions=masks, variance=variance)
        for m in METRICS:
            got = row["metrics"][m][key]
            if math.isnan(naive[m]):
                assert math.isnan(got), (key, m)
            else:
                assert got == pytest.approx(naive[m], rel=1e-9, abs=1e-12), (key, m)
    for m in METRICS:
        assert row[f"{m}_model"] == row["metrics"][m]["model"]
        assert row[f"{m}_diff"] == pytest.approx(
            row["metrics"][m]["model"] - row["metrics"][m]["average"], nan_ok=True
        )
        assert row["metrics"][m]["lower_is_better"] == (m in LOWER_IS_BETTER)

    # Per decile of variance (by rank): bins, mse, residual correlation.
    n = observed.size
    rank = np.empty(n, int)
    rank[np.argsort(variance, kind="stable")] = np.arange(n)
    decile = rank * 10 // n
    part = report.partitions[report.partitions["cell_type"] == TARGET].set_index("group")
    for g in range(10):
        m = decile == g
        a, b = model[m] - average[m], observed[m] - average[m]
        assert part.loc[g, "n_loci"] == m.sum()
        assert part.loc[g, "mse_model"] == pytest.approx(np.mean((observed[m] - model[m]) ** 2))
        assert part.loc[g, "mse_average"] == pytest.approx(np.mean(b**2))
        assert part.loc[g, "residual_corr"] == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9)
        assert part.loc[g, "variance_low"] == pytest.approx(variance[m].min())
    weights = np.bincount(decile)
    gain = np.sum(weights * part["residual_corr"].to_numpy()) / weights.sum()
    assert row["within_group_gain"] == pytest.approx(gain)
    from scipy.stats import spearmanr

    assert row["spearman_avg"] == pytest.approx(spearmanr(model, average).statistic)


def test_overlap_mask__equals_a_loop_over_regions() -> None:
    rng = np.random.default_rng(7)
    chrom = np.repeat(np.array(["chr1", "chr2"], dtype=object), 300)
    lo = np.concatenate([np.sort(rng.integers(0, 100_000, 300)) for _ in range(2)])
    hi = lo + rng.integers(0, 2_000, lo.size)
    s = rng.integers(0, 100_000, 60)
    regions = pd.DataFrame({"chrom": rng.choice(["chr1", "chr2", "chrX"], 60), "start": s,
                            "end": s + rng.integers(-50, 3_000, 60)})  # fmt: skip
    got = overlap_mask(chrom, lo, hi, regions)
    want = np.array([
        any(c == chrom[i] and e > s and max(s, lo[i]) < min(e, hi[i])
            for c, s, e in regions.itertuples(index=False))
        for i in range(lo.size)
    ])  # fmt: skip
    np.testing.assert_array_equal(got, want)


def test_audit_track__intervals_contain_the_point_estimates(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    gtf, bed = _annotations(ds, tmp_path)
    for score in (memorising(ds), informed(ds)):
        report = audit_track(_table(ds, score), ds, cell_type=TARGET, mark=MARK, genes=gtf,
                             enhancers=bed, block_size=BLOCK, n_bootstrap=400)  # fmt: skip
        row = _row(report)
        checked = 0
        for m, e in row["metrics"].items():
            for key in ("model", "average", "most_similar", "diff_average"):
                low, high = e[f"{key}_ci"]
                if math.isfinite(e[key]) and math.isfinite(low):
                    assert low - 1e-12 <= e[key] <= high + 1e-12, (m, key, e[key], low, high)
                    checked += 1
        assert checked >= 30
        for key in ("mse_gain", "within_group_gain"):
            low, high = row[f"{key}_ci"]
            assert low <= row[key] <= high


def test_audit_track__declared_leakage(tiny: dict) -> None:
    ds = tiny["ds"]
    cts = [str(c) for c in ds["cell_type"].values]
    train = [c for c in cts if c != TARGET][:3]
    report = audit_track(_table(ds, informed(ds)), ds, cell_type=TARGET, mark=MARK,
                         train_cell_types=train, train_chroms=["chr2"], block_size=BLOCK)  # fmt: skip
    chrom = np.asarray(ds["chrom"].values).astype(object)
    assert report.leakage_declared
    assert report.leakage == pytest.approx(np.mean(chrom == "chr2"))
    assert report.settings["average_cell_types"] == train
    # The Average is over the declared cell types only.
    sig, _ = _signal(ds)
    average = sig[[cts.index(c) for c in train]].mean(axis=0)
    observed = sig[cts.index(TARGET)]
    assert _row(report)["mse_average"] == pytest.approx(np.mean((observed - average) ** 2))
    assert "Leakage not declared" not in report.verdict


# ------------------------------------------------------------------------- paths


def test_audit_arrays__equals_the_cube_path(tiny: dict) -> None:
    ds = tiny["ds"]
    sig, cts = _signal(ds)
    pred = informed(ds, seed=5)
    options = {"train_cell_types": cts[1:], "train_chroms": ["chr1", "chr3"],
               "block_size": BLOCK, "n_bootstrap": 300}  # fmt: skip
    from_arrays = audit_arrays(sig, pred, target=TARGET, cell_types=cts,
                               chroms=np.asarray(ds["chrom"].values).astype(object),
                               starts=ds["start"].values, continuous=True, **options)  # fmt: skip
    track = xr.DataArray(pred, dims="locus", coords={"locus": np.arange(pred.size)})
    one_mark = ds[["signal"]].sel(mark=[MARK])
    from_cube = audit_track(track, one_mark, cell_type=TARGET, mark=MARK, **options)
    a = from_arrays.to_frame().drop(columns=["mark"])
    b = from_cube.to_frame().drop(columns=["mark"])
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(from_arrays.partitions, from_cube.partitions)
    assert from_arrays.call == from_cube.call
    # The target has no other mark there: the most-similar baseline is left out, said.
    assert any("most-similar baseline is left out" in n for n in from_cube.notes)
    assert math.isnan(_row(from_cube)["mse_most_similar"])


def test_audit_track__report_shows_continuous_tables(tiny: dict) -> None:
    ds = tiny["ds"]
    report = audit_track(_table(ds, memorising(ds)), ds, cell_type=TARGET, mark=MARK,
                         block_size=BLOCK, n_bootstrap=200)  # fmt: skip
    text = str(report)
    assert "pitfall audit (continuous)" in text
    for m in METRICS:
        assert f"\n{m:>7} " in text or f"\n{m} " in text
    assert "residual correlation" in text and "permutation" in text
    assert "random ranking" not in text
    page = report._repr_html_()
    assert "<img" in page and "msevar" in page and "residual_corr" in page
    d = report.to_dict()
    jsonschema.validate(d, json_schema())
    assert d["kind"] == "continuous" and d["call"] == "memorising"


# ------------------------------------------------------------------------- command line


def test_cli_audit__mark_writes_a_valid_report(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_json, out_png = tmp_path / "audit.json", tmp_path / "audit.png"
    code = cli.main([
        "audit", str(tiny["comp"].bigwigs[TARGET][MARK]), str(tiny["store"]),
        "--cell-type", TARGET, "--mark", MARK, "--json", str(out_json), "--figure", str(out_png),
        "--block-size", str(BLOCK), "--bootstrap", "200", "--permutations", "199",
    ])  # fmt: skip
    assert code == 0
    assert "pitfall audit (continuous)" in capsys.readouterr().out
    d = json.loads(out_json.read_text())
    jsonschema.validate(d, json_schema())
    assert d["kind"] == "continuous" and d["summary"][0]["mark"] == MARK
    assert d["settings"]["n_permutations"] == 199  # --permutations reaches the track path
    assert d["summary"][0]["metrics"]["mse"]["model"] == 0.0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing mark", ["--mark", "H3K27ac"], "mark 'H3K27ac' is not in the cube"),
        ("unobserved", ["--mark", MARK], f"'{TARGET}' has no observed {MARK} track"),
        ("in training", ["--mark", MARK, "--train-cell-types", f"E004,{TARGET}"],
         f"target cell type {TARGET} is among the training cell types"),
        ("missing cell type", ["--mark", MARK], "cell type 'E999' is not in the cube"),
    ],
)  # fmt: skip
def test_cli_audit__bad_target_exits_2(
    tiny: dict, capsys: pytest.CaptureFixture, case: str, extra: list[str], message: str
) -> None:
    store = tiny["unobserved"] if case == "unobserved" else tiny["store"]
    target = "E999" if case == "missing cell type" else TARGET
    code = cli.main(["audit", str(tiny["comp"].bigwigs[TARGET][MARK]), str(store),
                     "--cell-type", target, *extra])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    if case == "missing mark":
        assert MARK in err  # what exists
    if case == "unobserved":
        assert "E004" in err  # where it is observed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_cell_types": []}, "list of training cell types is empty"),
        ({"train_cell_types": ["E999"]}, "not in the cube"),
        ({"margin": 1.5}, "margin must be"),
        ({"memorisation_threshold": 1.0}, "memorisation_threshold"),
        ({"n_bootstrap": 5}, "n_bootstrap"),
    ],
)
def test_audit_track__argument_checks(tiny: dict, kwargs: dict, message: str) -> None:
    ds = tiny["ds"]
    with pytest.raises(ValueError, match=message):
        audit_track(_table(ds, memorising(ds)), ds, cell_type=TARGET, mark=MARK, **kwargs)


def test_audit_track__output_folder_refused(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    with pytest.raises(ValueError, match="is a folder"):
        audit_track(_table(ds, memorising(ds)), ds, cell_type=TARGET, mark=MARK,
                    json_path=tmp_path)  # fmt: skip
