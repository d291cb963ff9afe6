"""pitfall.audit on the tiny synthetic compendium's expression cube."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from pitfall import cli, tracks
from pitfall.audit import (
    AuditWarning,
    audit_predictions,
    load_predictions,
    read_prediction_table,
)
from pitfall.cube import open_cube
from pitfall.featurize import build
from pitfall.synth import synthesize


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("audit")
    comp = synthesize(root / "comp", "tiny")
    build(comp.manifest, root / "store", workers=1, processes=False, progress=False)
    ds = open_cube(root / "store")
    truth = comp.truth()
    # The cube's loci are the GTF's genes in genomic order, as in truth.npz.
    assert list(map(str, ds["name"].values)) == list(truth["gene_id"])
    return {"root": root, "store": root / "store", "ds": ds, "truth": truth}


def _activity(tiny: dict) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    t = tiny["truth"]
    return t["activity"].astype(float), list(t["cell_types"]), t["gene_id"], t["chrom"]


def memorising(tiny: dict, targets: list[str], seed: int = 0) -> pd.DataFrame:
    """What a memorising model outputs: the other cell types' mean activity plus noise."""
    act, cts, gene_id, _ = _activity(tiny)
    rng = np.random.default_rng(seed)
    # Gene ids without their version suffix: the audit matches them too.
    base = [re.sub(r"\.\d+$", "", g) for g in gene_id]
    parts = []
    for t in targets:
        others = np.delete(act, cts.index(t), axis=0).mean(axis=0)
        score = others + rng.normal(0, 0.01, others.size)
        parts.append(pd.DataFrame({"gene_id": base, "cell_type": t, "score": score}))
    return pd.concat(parts, ignore_index=True)


def own_signal(tiny: dict, target: str = "E003") -> pd.DataFrame:
    ds = tiny["ds"]
    sig = ds["signal"].sel(cell_type=target)
    score = (sig.sel(mark="H3K4me3") - sig.sel(mark="H3K27me3")).values
    return pd.DataFrame(
        {"locus": ds["name"].values.astype(object), "cell_type": target, "prediction": score}
    )


def _check_rules(report, margin: float = 0.01) -> None:
    """The verdict flags follow the documented rules from the reported numbers: the
    difference to the baseline (its ties broken at random) above the margin with an interval
    above 0, the within-group gain above the margin with a corrected p below 0.05."""
    row = report.to_frame().set_index("cell_type").loc["pooled"]
    diff = row["ap_model"] - row["ap_average_activity_random_ties"]
    assert row["ap_diff"] == pytest.approx(diff)
    beats = diff > margin and row["ap_diff_ci"][0] > 0
    within = row["within_group_gain"] > margin and row["within_group_p_adjusted"] < 0.05
    assert report.beats_baseline == beats
    assert report.beats_within_groups == within
    assert report.memorising == (not within and row["spearman_avg"] > 0.8)


# ------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("targets", [["E003"], ["E003", "E004"]])
def test_audit__memorising_model_is_flagged(tiny: dict, targets: list[str]) -> None:
    report = audit_predictions(memorising(tiny, targets), tiny["ds"])
    frame = report.to_frame()
    assert list(frame["cell_type"]) == [*targets, "pooled"]
    assert report.memorising and not report.beats_within_groups
    assert "likely memorising locus activity" in report.verdict
    assert (frame["spearman_avg"] > 0.9).all()
    assert (frame["call"] == "memorising").all()
    _check_rules(report)


def test_audit__own_signal_model_is_not_flagged(tiny: dict) -> None:
    report = audit_predictions(own_signal(tiny), tiny["ds"])
    _check_rules(report)
    row = report.to_frame().iloc[-1]
    assert not report.memorising
    # On the tiny cube the raw H3K4me3 - H3K27me3 difference ranks loci within an activity
    # group far better than the baseline (which is constant there), yet the baseline's
    # locus-level information gives it the higher AP overall.
    assert report.beats_within_groups
    assert row["within_group_p"] < 1e-3
    assert row["spearman_avg"] < 0.8
    assert "likely memorising" not in report.verdict
    # scikit-learn decides which verdict is due: the baseline has the higher pooled AP.
    ds = tiny["ds"]
    y = ds["label"].sel(cell_type="E003").values
    others = [c for c in map(str, ds["cell_type"].values) if c != "E003"]
    avg = ds["label"].sel(cell_type=others).mean("cell_type").values
    score = own_signal(tiny)["prediction"].to_numpy()
    assert average_precision_score(y, score) < average_precision_score(y, avg)
    assert not report.beats_baseline and report.call == "within groups only"
    # the interval of the difference lies below 0: the model falls short of the baseline
    assert row["ap_diff_ci"][1] < 0
    assert report.verdict.startswith("falls short of the average-activity baseline")
    assert "but within groups of equally active loci it ranks better than chance" in (
        report.verdict
    )


def test_audit__logistic_regression_on_own_signal(tiny: dict) -> None:
    ds = tiny["ds"]
    x = ds["signal"].sel(cell_type="E003").values
    y = ds["label"].sel(cell_type="E003").values
    rng = np.random.default_rng(1)
    half = rng.permutation(len(y))
    fit, score = half[: len(y) // 2], half[len(y) // 2 :]
    model = LogisticRegression(max_iter=1000).fit(x[fit], y[fit])
    pred = pd.DataFrame(
        {
            "name": ds["name"].values.astype(object)[score],
            "cell_type": "E003",
            "score": model.decision_function(x[score]),
        }
    )
    report = audit_predictions(pred, ds)
    _check_rules(report)
    assert not report.memorising
    assert report.to_frame().iloc[-1]["n_scored"] == len(score)
    # The other half of the loci (unscored) is where labels-based similarity would look.
    assert report.settings["similarity_on"] == "signal"


# ------------------------------------------------------------------------- numbers


def test_audit__aps_equal_sklearn(tiny: dict) -> None:
    act, cts, _, _ = _activity(tiny)
    pred = memorising(tiny, ["E003", "E004"], seed=3)
    report = audit_predictions(pred, tiny["ds"])
    frame = report.to_frame().set_index("cell_type")
    ys, ss, avgs = [], [], []
    for t in ["E003", "E004"]:
        y = act[cts.index(t)]
        s = pred.loc[pred["cell_type"] == t, "score"].to_numpy()
        avg = np.delete(act, cts.index(t), axis=0).mean(axis=0)
        best = frame.loc[t, "most_similar"]
        assert frame.loc[t, "ap_model"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert frame.loc[t, "ap_average_activity"] == pytest.approx(
            average_precision_score(y, avg), abs=1e-12
        )
        assert frame.loc[t, "ap_most_similar"] == pytest.approx(
            average_precision_score(y, act[cts.index(best)]), abs=1e-12
        )
        # a random ranking's expected AP (k positives among n), term by term
        n, k = y.size, int(y.sum())
        harmonic = sum(1 / r for r in range(1, n + 1))
        expected = (harmonic + (k - 1) / (n - 1) * (n - harmonic)) / n
        assert frame.loc[t, "ap_random"] == pytest.approx(expected, abs=1e-12)
        ys.append(y)
        ss.append(s)
        avgs.append(avg)
    y, s, avg = np.concatenate(ys), np.concatenate(ss), np.concatenate(avgs)
    assert frame.loc["pooled", "ap_model"] == pytest.approx(
        average_precision_score(y, s), abs=1e-12
    )
    assert frame.loc["pooled", "ap_average_activity"] == pytest.approx(
        average_precision_score(y, avg), abs=1e-12
    )
    assert frame.loc["pooled", "pearson_avg"] == pytest.approx(np.corrcoef(s, avg)[0, 1])
    # partitioned AP of group k = loci active in k of the 5 other cell types
    part = report.partitions
    row = part[(part["cell_type"] == "E003") & (part["group"] == 3)].iloc[0]
    i = cts.index("E003")
    m = np.delete(act, i, axis=0).sum(axis=0) == 3
    assert row["n_loci"] == m.sum()
    assert row["ap_model"] == pytest.approx(average_precision_score(ys[0][m], ss[0][m]))
    n, k = int(m.sum()), int(ys[0][m].sum())
    harmonic = sum(1 / r for r in range(1, n + 1))
    assert row["ap_random_expected"] == pytest.approx(
        (harmonic + (k - 1) / (n - 1) * (n - harmonic)) / n, abs=1e-12
    )
    assert row["gain"] == pytest.approx(row["ap_model"] - row["ap_random_expected"])


def test_audit__leakage(tiny: dict) -> None:
    ds = tiny["ds"]
    others = ["E004", "E037", "E106", "E113", "E116"]
    pred = memorising(tiny, ["E003"])
    full = audit_predictions(
        pred, ds, train_cell_types=others, train_chroms=["chr1", "chr2", "chr3"]
    )
    assert full.leakage == 1.0
    assert "100% of the scored loci were labelled in training" in full.verdict
    _, _, gene_id, chrom = _activity(tiny)
    on_chr1 = pred[np.isin(pred.index, np.flatnonzero(chrom == "chr1"))]
    hybrid = audit_predictions(on_chr1, ds, train_cell_types=others, train_chroms=["chr2", "chr3"])
    assert hybrid.leakage == 0.0
    assert hybrid.to_frame().iloc[-1]["n_scored"] == np.sum(chrom == "chr1")
    # undeclared: the worst is assumed, and said
    undeclared = audit_predictions(pred, ds)
    assert undeclared.leakage == 1.0 and not undeclared.leakage_declared
    assert "Leakage not declared: assumed the worst" in undeclared.verdict
    assert "--train-cell-types" in undeclared.verdict and full.leakage_declared
    # Training cell types also set the baseline's reference
    two = audit_predictions(pred, ds, train_cell_types=["E004", "E037"])
    assert two.settings["reference_cell_types"]["E003"] == ["E004", "E037"]
    assert two.partitions["group"].max() <= 2


# ------------------------------------------------------------------------- formats


def _as_dataarray(pred: pd.DataFrame, ds: xr.Dataset) -> xr.DataArray:
    wide = pred.pivot(index="cell_type", columns="gene_id", values="score")
    return xr.DataArray(
        wide.to_numpy(),
        dims=("cell_type", "locus"),
        coords={
            "cell_type": np.asarray(wide.index, dtype=object),
            "locus": np.asarray(wide.columns, dtype=object),
        },
        name="score",
    )


def test_read_prediction_table__file_formats_round_trip(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003", "E004"])
    ref = audit_predictions(pred, ds).to_frame()
    da = _as_dataarray(pred, ds)
    pred.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    pred.rename(columns={"score": "prediction"}).to_csv(tmp_path / "p.csv.gz", index=False)
    pred.to_parquet(tmp_path / "p.parquet")
    da.to_netcdf(tmp_path / "p.nc")
    da.to_dataset().to_zarr(tmp_path / "p.zarr", consolidated=False)
    # by integer position, with the cube's names as a coordinate dropped
    pos = xr.DataArray(
        np.stack([pred.loc[pred["cell_type"] == t, "score"].to_numpy() for t in ("E003", "E004")]),
        dims=("cell_type", "locus"),
        coords={"cell_type": ["E003", "E004"], "locus": np.arange(ds.sizes["locus"])},
    )
    inputs = ["p.tsv", "p.csv.gz", "p.parquet", "p.nc", "p.zarr"]
    for src in [*(tmp_path / f for f in inputs), da, da.to_dataset(), pos]:
        got = audit_predictions(src, tiny["store"]).to_frame()
        pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-6)
    long = read_prediction_table(tmp_path / "p.nc")
    assert list(long.columns) == ["locus", "cell_type", "score"] and len(long) == len(pred)


# ------------------------------------------------------------------------- bad input


def test_load_predictions__unknown_loci_warn_with_counts(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    pred.loc[:2, "gene_id"] = ["NOPE1", "NOPE2", "NOPE3"]
    with pytest.warns(AuditWarning, match=r"3 locus name\(s\).*3 rows.*NOPE1"):
        report = audit_predictions(pred, tiny["ds"])
    assert report.to_frame().iloc[-1]["n_scored"] == len(pred) - 3
    pred["gene_id"] = "NOPE"
    pred["gene_id"] += pd.Series(np.arange(len(pred))).astype(str)
    with pytest.raises(ValueError, match=r"none of the 400 predicted loci matches"):
        audit_predictions(pred, tiny["ds"])


def test_load_predictions__unknown_cell_types(tiny: dict) -> None:
    pred = memorising(tiny, ["E003", "E004"])
    pred.loc[pred["cell_type"] == "E004", "cell_type"] = "E999"
    with pytest.warns(AuditWarning, match=r"1 cell type.*E999.*400 rows"):
        report = audit_predictions(pred, tiny["ds"])
    assert list(report.to_frame()["cell_type"]) == ["E003", "pooled"]
    with pytest.raises(ValueError, match=r"target cell type\(s\) \['E999'\] absent"):
        audit_predictions(pred[pred["cell_type"] == "E999"], tiny["ds"])
    with pytest.raises(ValueError, match=r"training cell type\(s\) \['E998'\]"):
        audit_predictions(memorising(tiny, ["E003"]), tiny["ds"], train_cell_types=["E004", "E998"])


def test_audit__nan_and_constant_scores_warn(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    pred.loc[[5, 6, 7, 8], "score"] = np.nan
    with pytest.warns(AuditWarning, match=r"4 of 400 scores are NaN"):
        report = audit_predictions(pred, tiny["ds"])
    assert report.to_frame().iloc[-1]["n_scored"] == 396
    assert any("NaN" in w for w in report.warnings)
    pred["score"] = 0.3
    with pytest.warns(AuditWarning, match=r"all 400 scores are equal.*AP equals the prevalence"):
        report = audit_predictions(pred, tiny["ds"])
    row = report.to_frame().iloc[-1]
    assert row["ap_model"] == pytest.approx(row["prevalence"])


def test_load_predictions__duplicates_and_missing_columns_error(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    dup = pd.concat([pred, pred.iloc[:3]], ignore_index=True)
    with pytest.raises(ValueError, match=r"6 prediction rows repeat.*3 distinct pairs"):
        audit_predictions(dup, tiny["ds"])
    # the same gene with and without its version suffix is a duplicate too
    versioned = pred.iloc[:1].assign(gene_id=str(tiny["ds"]["name"].values[0]))
    with pytest.raises(ValueError, match=r"2 prediction rows repeat"):
        audit_predictions(pd.concat([pred, versioned]), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a score column: expected one of \['score'"):
        audit_predictions(pred.rename(columns={"score": "value"}), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a locus column.*'locus', 'name', 'gene_id'"):
        audit_predictions(pred.rename(columns={"gene_id": "g"}), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a cell type column"):
        audit_predictions(pred.drop(columns="cell_type"), tiny["ds"])


# ------------------------------------------------------------------------- outputs


def test_report__json_figure_and_text(tiny: dict, tmp_path: Path) -> None:
    report = audit_predictions(
        memorising(tiny, ["E003"]),
        tiny["ds"],
        json_path=tmp_path / "r.json",
        figure=tmp_path / "r.png",
    )
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["memorising"] is True and d["verdict"] == report.verdict
    assert d["summary"][-1]["cell_type"] == "pooled" and d["leakage"] == 1.0
    assert d["leakage_declared"] is False
    assert (tmp_path / "r.png").stat().st_size > 10_000
    text = str(report)
    assert "AP model" in text and "verdict: does not beat" in text


# ------------------------------------------------------------------------- locus matching


def integer_named(tiny: dict) -> xr.Dataset:
    """The tiny cube with integer-looking, zero-padded names that are not the positions."""
    ds = tiny["ds"]
    order = np.random.default_rng(5).permutation(ds.sizes["locus"])
    return ds.assign_coords(name=("locus", np.asarray([f"{i:03d}" for i in order], object)))


def perfect(ds: xr.Dataset, target: str = "E003") -> pd.DataFrame:
    """A perfect predictor: the target's own labels as scores, keyed by the cube's names."""
    return pd.DataFrame(
        {
            "locus": np.asarray(ds["name"].values).astype(object),
            "cell_type": target,
            "score": ds["label"].sel(cell_type=target).values.astype(float),
        }
    )


def test_load_predictions__integer_looking_names_match_by_name(tiny: dict, tmp_path: Path) -> None:
    ds = integer_named(tiny)
    perfect(ds).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    preds = load_predictions(tmp_path / "p.tsv", ds)
    assert preds.loci_by == "name"
    # "007" is the locus named "007", wherever it lies, not position 7.
    names = np.asarray(ds["name"].values).astype(object)
    np.testing.assert_array_equal(preds.table["pos"], [np.flatnonzero(names == k)[0]
                                                        for k in preds.table["locus"]])  # fmt: skip
    assert set(preds.table["locus"]) == set(names)


def test_audit__perfect_predictor_with_integer_names_scores_ap_1(
    tiny: dict, tmp_path: Path
) -> None:
    ds = integer_named(tiny)
    perfect(ds).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    y = ds["label"].sel(cell_type="E003").values
    assert average_precision_score(y, y) == 1.0  # the oracle
    row = audit_predictions(tmp_path / "p.tsv", ds).to_frame().iloc[0]
    assert row["ap_model"] == 1.0
    # Asked for positions, the same file means something else: the label of the locus
    # named k scores position k (what the audit used to do by itself).
    by_pos = audit_predictions(tmp_path / "p.tsv", ds, loci_by="position").to_frame().iloc[0]
    names = np.asarray(ds["name"].values).astype(object)
    s = np.empty_like(y)
    s[names.astype(int)] = y
    assert by_pos["ap_model"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert by_pos["ap_model"] < 0.9


def test_load_predictions__ambiguous_table_is_refused_with_how_to_choose(tiny: dict) -> None:
    ds = tiny["ds"]
    pred = perfect(ds).rename(columns={"locus": "gene_id"})
    both = pred.assign(
        chrom=np.asarray(ds["chrom"].values).astype(object),
        start=ds["start"].values,
        end=ds["end"].values,
    )
    with pytest.raises(
        ValueError,
        match=r"loci twice, by name \(column 'gene_id'\) and by coordinates.*loci_by='name'.*"
        r"--loci-by",
    ):
        load_predictions(both, ds)
    by_name = audit_predictions(both, ds, loci_by="name").to_frame()
    by_coords = audit_predictions(both, ds, loci_by="coordinates").to_frame()
    pd.testing.assert_frame_equal(by_name, by_coords)
    assert by_name.iloc[0]["ap_model"] == 1.0
    two = pred.assign(name=pred["gene_id"])
    with pytest.raises(ValueError, match=r"several locus columns \['name', 'gene_id'\]"):
        load_predictions(two, ds)


def test_load_predictions__coordinates_match_like_names(tiny: dict) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003", "E004"], seed=2)
    names = [re.sub(r"\.\d+$", "", str(n)) for n in ds["name"].values]
    at = pd.Index(names).get_indexer(pred["gene_id"])
    coords = pred.drop(columns="gene_id").assign(
        chrom=np.asarray(ds["chrom"].values).astype(object)[at],
        start=ds["start"].values[at].astype(str),  # as read from a text file
        end=ds["end"].values[at],
    )
    preds = load_predictions(coords, ds)
    assert preds.loci_by == "coordinates"
    np.testing.assert_array_equal(preds.scores("E004")[0], np.arange(ds.sizes["locus"]))
    pd.testing.assert_frame_equal(
        audit_predictions(coords, ds).to_frame(), audit_predictions(pred, ds).to_frame()
    )
    off = coords.assign(end=coords["end"] + 1)
    with pytest.raises(ValueError, match=r"none of the 800 predicted windows .* has the chrom"):
        load_predictions(off, ds)


def test_load_predictions__unmatched_integers_suggest_positions(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    pred["gene_id"] = np.arange(len(pred))
    with pytest.raises(ValueError, match=r"holds integers.*loci_by='position'"):
        load_predictions(pred, tiny["ds"])
    preds = load_predictions(pred, tiny["ds"], loci_by="position")
    np.testing.assert_array_equal(preds.table["pos"], np.arange(len(pred)))


def test_load_predictions__positions_dataarray_is_read_without_copies(tiny: dict) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003", "E004"], seed=4)
    n = ds.sizes["locus"]
    values = pred["score"].to_numpy().reshape(2, n).astype(np.float32)
    da = xr.DataArray(
        values, dims=("cell_type", "locus"),
        coords={"cell_type": ["E003", "E004"], "locus": np.arange(n)},
    )  # fmt: skip
    preds = load_predictions(da, ds)
    pos, scores = preds.scores("E003")
    # in cube order and all finite: the DataArray's own arrays, float32 kept
    assert scores.dtype == np.float32 and np.shares_memory(scores, values)
    np.testing.assert_array_equal(pos, np.arange(n))
    assert preds.table["score"].dtype == np.float64
    # the same numbers as the float64 table of the same scores
    table = pred.assign(score=values.ravel().astype(np.float64))
    pd.testing.assert_frame_equal(
        audit_predictions(da, ds).to_frame(), audit_predictions(table, ds).to_frame()
    )
    # reordered positions with a NaN: sorted and dropped, a copy
    values[0, 3] = np.nan
    shuffled = da.isel(locus=np.r_[1:n, 0])
    with pytest.warns(AuditWarning, match="1 of 800 scores are NaN"):
        preds = load_predictions(shuffled, ds)
    pos, scores = preds.scores("E003")
    np.testing.assert_array_equal(pos, np.delete(np.arange(n), 3))
    np.testing.assert_array_equal(scores, np.delete(values[0], 3))


def test_pool__a_block_is_one_block_over_targets() -> None:
    from pitfall.audit.metrics import TargetScores, pool

    def part(name: str, keys: list[int], blocks: list[int]) -> TargetScores:
        n = len(blocks)
        return TargetScores(
            name=name, y=np.ones(n, np.float32), model=np.ones(n, np.float32),
            baselines={"average_activity": np.ones(n, np.float32), "most_similar": None},
            n_active=np.zeros(n, np.int16), blocks=np.asarray(blocks, np.int32),
            block_keys=np.asarray(keys, np.int64),
        )  # fmt: skip

    a, b = part("A", [3, 8], [0, 0, 1]), part("B", [1, 8, 9], [2, 1, 0, 1])
    pooled = pool([a, b])
    np.testing.assert_array_equal(pooled.block_keys, [1, 3, 8, 9])
    np.testing.assert_array_equal(pooled.block_keys[pooled.blocks], [3, 3, 8, 9, 8, 1, 8])
    # one target: its own arrays
    alone = pool([a])
    assert alone.blocks is a.blocks and alone.y is a.y and alone.model is a.model


# ------------------------------------------------------------------------- tracks


def test_audit__bigwig_round_trip_gives_the_table_aps(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003"], seed=4)
    # bigWig stores float32: scores that are float32 already come back exactly.
    pred["score"] = pred["score"].astype(np.float32).astype(np.float64)
    direct = audit_predictions(pred, ds)
    track = tracks.write_track(load_predictions(pred, ds).to_dataarray(ds), ds, tmp_path / "p.bw")
    via = audit_predictions(track, ds, cell_type="E003")
    pd.testing.assert_frame_equal(via.to_frame(), direct.to_frame(), check_exact=True)
    assert via.settings["loci_by"] == "track windows" and via.warnings == []
    y = ds["label"].sel(cell_type="E003").values
    ap = average_precision_score(y, pred["score"].to_numpy())
    assert via.to_frame().iloc[0]["ap_model"] == pytest.approx(ap, abs=1e-12)


def test_audit__bedgraph_round_trip_keeps_float64(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003", "E004"], seed=6)
    scores = load_predictions(pred, ds).to_dataarray(ds)
    paths = {}
    for ct in ("E003", "E004"):
        paths[ct] = tracks.write_track(scores, ds, tmp_path / f"{ct}.bedGraph.gz", cell_type=ct)
    via = audit_predictions(paths, ds)
    pd.testing.assert_frame_equal(via.to_frame(), audit_predictions(pred, ds).to_frame())
    back = tracks.read_track(paths["E004"], ds)[0]
    np.testing.assert_array_equal(back, pred.loc[pred["cell_type"] == "E004", "score"])


def test_audit__track_needs_a_cell_type(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    scores = load_predictions(memorising(tiny, ["E003"]), ds).to_dataarray(ds)
    track = tracks.write_track(scores, ds, tmp_path / "p.bw")
    with pytest.raises(ValueError, match=r"p\.bw is a track of one cell type.*--cell-type"):
        audit_predictions(track, ds)
    with pytest.raises(ValueError, match=r"by its windows' coordinates; loci_by='name'"):
        audit_predictions(track, ds, cell_type="E003", loci_by="name")


def test_cli__export_predictions_then_audit_the_track(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pred = memorising(tiny, ["E003", "E004"])
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    out = tmp_path / "e004.bw"
    argv = ["export-predictions", str(tmp_path / "pred.tsv"), str(tiny["store"])]
    assert cli.main([*argv, "--cell-type", "E004", "--out", str(out)]) == 0
    assert f"wrote 400 loci of E004 to {out}" in capsys.readouterr().out
    assert cli.main([*argv, "--cell-type", "E999", "--out", str(tmp_path / "x.bw")]) == 2
    assert "no row for cell type 'E999'" in capsys.readouterr().err
    code = cli.main(
        ["audit", str(out), str(tiny["store"]), "--cell-type", "E004", "--fail-on", "memorising"]
    )
    assert code == 1
    cap = capsys.readouterr()
    assert "likely memorising" in cap.out and "failed --fail-on memorising" in cap.err


# ------------------------------------------------------------------------- outputs


def test_report__html_repr_shows_verdict_and_numbers(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"], seed=8)
    report = audit_predictions(pred, tiny["ds"])
    page = report._repr_html_()
    act, cts, _, _ = _activity(tiny)
    ap = average_precision_score(act[cts.index("E003")], pred["score"])
    assert f"<td>{ap:.3f} [" in page
    assert html.escape(report.verdict) in page and ">memorising</span>" in page
    assert page.count("<table") == 2
    report.warnings.append("a <b>warning</b>")
    assert "<li>a &lt;b&gt;warning&lt;/b&gt;</li>" in report._repr_html_()


def test_cli__audit_with_training_data(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pred = memorising(tiny, ["E003"])
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    argv = [
        "audit",
        str(tmp_path / "pred.tsv"),
        str(tiny["store"]),
        "--train-cell-types",
        "E004,E037,E106,E113,E116",
        "--train-chroms",
        "chr1,chr2,chr3",
        "--json",
        str(tmp_path / "out" / "audit.json"),
    ]
    assert cli.parser().parse_args(argv).func is cli.cmd_audit
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "pooled" in out and "likely memorising" in out
    d = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert d["leakage"] == 1.0


@pytest.mark.parametrize(
    ("model", "gates", "code"),
    [
        ("memorising", ["memorising"], 1),
        ("memorising", ["no-gain"], 1),
        ("own signal", ["memorising", "no-gain"], 0),
        ("memorising", [], 0),
    ],
)
def test_cli__fail_on_sets_the_exit_status(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture, model: str, gates: list, code: int
) -> None:
    pred = memorising(tiny, ["E003"]) if model == "memorising" else own_signal(tiny)
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    # The call behind each gate, from scipy: a memoriser's scores follow the average activity.
    ds = tiny["ds"]
    others = [c for c in map(str, ds["cell_type"].values) if c != "E003"]
    avg = ds["label"].sel(cell_type=others).mean("cell_type").values
    rho = spearmanr(pred.iloc[:, 2].to_numpy(dtype=float), avg).statistic
    assert (rho > 0.8) == (model == "memorising")
    argv = ["audit", str(tmp_path / "pred.tsv"), str(tiny["store"])]
    argv += [x for g in gates for x in ("--fail-on", g)]
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert ("failed --fail-on" in err) == bool(code)


def test_cli__ambiguous_table_exits_2_with_how_to_choose(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ds = tiny["ds"]
    both = perfect(ds).assign(chrom=np.asarray(ds["chrom"].values).astype(object), start=0, end=1)
    both.to_csv(tmp_path / "both.tsv", sep="\t", index=False)
    assert cli.main(["audit", str(tmp_path / "both.tsv"), str(tiny["store"])]) == 2
    assert "--loci-by" in capsys.readouterr().err
    code = cli.main(["audit", str(tmp_path / "both.tsv"), str(tiny["store"]), "--loci-by", "name"])
    assert code == 0
    assert "AP model" in capsys.readouterr().out


# ------------------------------------------------------------------------- fair references


def _random_scores(ds: xr.Dataset, seed: int, target: str = "E003") -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.random((1, ds.sizes["locus"])),
        dims=("cell_type", "locus"),
        coords={"cell_type": [target], "locus": np.arange(ds.sizes["locus"])},
    )


@pytest.mark.slow
def test_audit__random_scores_gain_nothing_within_groups_over_200_seeds(tiny: dict) -> None:
    # Uniformly random scores rank a group's loci at random: their within-group gain
    # against a random ranking's expectation must average 0 (against the tied baseline's
    # prevalence it averaged +0.022), and Holm's correction must keep the share of audits
    # that call any group significant at 5 % (its family-wise error rate), where the raw
    # p-values call one in about 26 % of them (six groups).
    from scipy.stats import binomtest

    ds = tiny["ds"].load()
    gains, corrected, raw = [], 0, 0
    for seed in range(200):
        report = audit_predictions(_random_scores(ds, seed), ds, n_bootstrap=20, seed=seed)
        gains.append(report.to_frame().iloc[-1]["within_group_gain"])
        pooled = report.partitions[report.partitions["cell_type"] == "pooled"]
        corrected += bool(pooled["significant"].any())
        raw += bool((pooled["p"] <= 0.05).any())
    gains = np.asarray(gains)
    assert abs(gains.mean()) < 2 * gains.std(ddof=1) / np.sqrt(gains.size)
    # An exactly calibrated procedure calls about 5 % of 200 audits: the count may not
    # exceed 5 % by more than chance (one-sided binomial test), and the raw p-values must.
    assert binomtest(corrected, 200, 0.05, alternative="greater").pvalue > 0.05
    assert binomtest(raw, 200, 0.05, alternative="greater").pvalue < 1e-6


def test_audit__tied_baseline_is_compared_with_ties_broken_at_random(tiny: dict) -> None:
    # Five reference cell types: the average activity takes six values, so its AP with ties
    # grouped (scikit-learn's) is below the mean AP over random orders of its ties.
    ds = tiny["ds"]
    report = audit_predictions(memorising(tiny, ["E003"]), ds)
    row = report.to_frame().iloc[0]
    act, cts, _, _ = _activity(tiny)
    y = act[cts.index("E003")]
    avg = np.delete(act, cts.index("E003"), axis=0).mean(axis=0)
    rng = np.random.default_rng(0)
    broken = [average_precision_score(y, avg + 1e-9 * rng.random(y.size)) for _ in range(400)]
    assert row["ap_average_activity"] == pytest.approx(average_precision_score(y, avg), abs=1e-12)
    assert row["ap_average_activity_random_ties"] == pytest.approx(np.mean(broken), abs=3e-3)
    assert row["ap_average_activity_random_ties"] > row["ap_average_activity"]
    assert row["ap_diff"] == pytest.approx(row["ap_model"] - row["ap_average_activity_random_ties"])
    for col in ("ap_model", "ap_average_activity", "ap_diff", "within_group_gain"):
        low, high = row[f"{col}_ci"]
        assert low <= row[col] <= high, col


def test_audit__seeded_intervals_repeat_and_depend_on_the_seed(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"], seed=2)
    # 100 kb blocks: the tiny genome's three chromosomes of about 1 Mb would otherwise be
    # three blocks, too few for resampling to vary with the seed.
    kw = {"block_size": 100_000}
    a = audit_predictions(pred, tiny["ds"], seed=5, **kw).to_frame()
    b = audit_predictions(pred, tiny["ds"], seed=5, **kw).to_frame()
    c = audit_predictions(pred, tiny["ds"], seed=6, **kw).to_frame()
    pd.testing.assert_frame_equal(a, b)
    assert a.iloc[0]["ap_model_ci"] != c.iloc[0]["ap_model_ci"]
    assert a.iloc[0]["ap_model"] == c.iloc[0]["ap_model"]


# ------------------------------------------------------------------------- plain arrays


def test_audit_arrays__equals_the_cube_path(tiny: dict) -> None:
    from pitfall.audit import audit_arrays

    ds = tiny["ds"]
    labels_only = ds[["label"]].drop_vars([v for v in ("position",) if v in ds.coords])
    pred = memorising(tiny, ["E003", "E004"], seed=9)
    via_cube = audit_predictions(pred, labels_only, train_cell_types=["E037", "E106", "E113"])
    scores = {t: pred.loc[pred["cell_type"] == t, "score"].to_numpy() for t in ("E003", "E004")}
    labels = ds["label"].values
    via_arrays = audit_arrays(
        labels, scores, cell_types=[str(c) for c in ds["cell_type"].values],
        chroms=np.asarray(ds["chrom"].values).astype(object), starts=ds["start"].values,
        train_cell_types=["E037", "E106", "E113"],
    )  # fmt: skip
    pd.testing.assert_frame_equal(via_arrays.to_frame(), via_cube.to_frame())
    pd.testing.assert_frame_equal(via_arrays.partitions, via_cube.partitions)
    assert via_arrays.verdict == via_cube.verdict


def test_audit_arrays__bad_shapes_name_the_problem() -> None:
    from pitfall.audit import audit_arrays

    labels = np.zeros((3, 10))
    labels[:, :4] = 1
    with pytest.raises(ValueError, match="give cell_types="):
        audit_arrays(labels, np.zeros(10), target="C")
    with pytest.raises(ValueError, match="give target="):
        audit_arrays(labels, np.zeros(10), cell_types=["A", "B", "C"])
    with pytest.raises(ValueError, match="scores of C hold 9 values for 10 loci"):
        audit_arrays(labels, np.zeros(9), target="C", cell_types=["A", "B", "C"])
    with pytest.raises(ValueError, match="3 cell type names for 2 rows"):
        audit_arrays(labels[:2], np.zeros(10), target="C", cell_types=["A", "B", "C"])


def test_audit_arrays__imports_no_heavy_framework() -> None:
    code = (
        "import sys\n"
        "from pitfall.audit import audit_arrays\n"
        "heavy = [m for m in ('tensorflow', 'torch', 'xgboost', 'distributed', 'keras')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------- every cube audits


@pytest.fixture(scope="module")
def roadmap_labels(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pitfall.datasets import roadmap

    root = tmp_path_factory.mktemp("roadmap")
    manifest = roadmap.manifest_from_folder(shared_data, root)
    build(manifest, root / "store", workers=0, progress=False)
    return root / "store"


def test_audit__labels_only_real_cube_gives_a_full_report(
    roadmap_labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The real Roadmap expression labels (56 epigenomes, no marks): the most-similar baseline
    # has nothing a model could see to compare on, so it is left out with a sentence.
    ds = open_cube(roadmap_labels)
    assert "signal" not in ds
    chrom = np.asarray(ds["chrom"].values).astype(object)
    on_chr1 = chrom == "chr1"
    others = [c for c in map(str, ds["cell_type"].values) if c != "E003"]
    avg = ds["label"].sel(cell_type=others).mean("cell_type").values
    pred = pd.DataFrame({
        "locus": np.asarray(ds["name"].values).astype(object)[on_chr1], "cell_type": "E003",
        "score": avg[on_chr1] + np.random.default_rng(0).normal(0, 0.01, on_chr1.sum()),
    })  # fmt: skip
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    code = cli.main([
        "audit", str(tmp_path / "pred.tsv"), str(roadmap_labels), "--train-cell-types",
        ",".join(others), "--train-chroms", ",".join(sorted(set(chrom) - {"chr1"})),
        "--json", str(tmp_path / "a.json"), "--bootstrap", "200",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "most-similar baseline is left out: the cube holds no signal" in out
    d = json.loads((tmp_path / "a.json").read_text())
    row = d["summary"][0]
    assert row["ap_most_similar"] is None and d["leakage"] == 0.0 and d["leakage_declared"]
    # the data README's figure: the average activity over the 55 other epigenomes, chr1 here
    y = ds["label"].sel(cell_type="E003").values[on_chr1]
    assert row["ap_average_activity"] == pytest.approx(
        average_precision_score(y, avg[on_chr1]), abs=1e-12
    )
    assert d["call"] == "memorising"


# ------------------------------------------------------------------------- arguments


def test_audit__target_among_training_cell_types_is_refused(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pred = memorising(tiny, ["E003"])
    with pytest.raises(
        ValueError, match=r"target cell type\(s\) \['E003'\] are among the training"
    ):
        audit_predictions(pred, tiny["ds"], train_cell_types=["E003", "E004"])
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    argv = ["audit", str(tmp_path / "pred.tsv"), str(tiny["store"])]
    gates = ["--fail-on", "memorising", "--fail-on", "no-gain"]
    assert cli.main([*argv, "--train-cell-types", "E003,E004", *gates]) == 2
    assert "--train-cell-types" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--train-cell-types", ",", "list of training cell types is empty"),
        ("--train-chroms", " , ", "list of training chromosomes is empty"),
        ("--memorisation-threshold", "5", r"memorisation_threshold must lie in \(-1, 1\)"),
        ("--margin", "nan", r"margin must be a number in \[0, 1\)"),
        ("--level", "1.5", r"level must lie in \[0.5, 1\)"),
        ("--bootstrap", "3", "n_bootstrap must be at least 20"),
        ("--permutations", "10", "n_permutations must be an integer >= 99"),
    ],
)
def test_cli__audit_arguments_are_checked_before_work(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture, option: str, value: str,
    message: str,
) -> None:  # fmt: skip
    memorising(tiny, ["E003"]).to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    code = cli.main(["audit", str(tmp_path / "pred.tsv"), str(tiny["store"]), option, value])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli__audit_json_onto_a_folder_is_a_bad_argument(
    tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    memorising(tiny, ["E003"]).to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    (tmp_path / "out").mkdir()
    argv = [
        "audit",
        str(tmp_path / "pred.tsv"),
        str(tiny["store"]),
        "--json",
        str(tmp_path / "out"),
    ]
    assert cli.main(argv) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_load_predictions__another_version_is_not_a_match(tiny: dict) -> None:
    ds = tiny["ds"]
    pred = perfect(ds)
    names = list(pred["locus"])
    assert re.search(r"\.\d+$", names[0])
    base = re.sub(r"\.\d+$", "", names[0])
    pred.loc[0, "locus"] = f"{base}.999"  # the cube has base.<its version>
    with pytest.warns(AuditWarning, match=r"match a cube locus only in another version.*\.999"):
        preds = load_predictions(pred, ds)
    assert 0 not in set(preds.table["pos"])
    pred.loc[0, "locus"] = base  # without a version it matches
    assert 0 in set(load_predictions(pred, ds).table["pos"])


# ------------------------------------------------------------------------- the report


def test_report__json_follows_the_shipped_schema(tiny: dict, tmp_path: Path) -> None:
    import jsonschema

    from pitfall.audit import json_schema

    report = audit_predictions(memorising(tiny, ["E003", "E004"]), tiny["ds"],
                               json_path=tmp_path / "a.json")  # fmt: skip
    doc = json.loads((tmp_path / "a.json").read_text())
    jsonschema.validate(doc, json_schema())
    target = doc["summary"][0]
    for key in ("ap_model", "ap_model_ci", "ap_average_activity", "ap_average_activity_ci",
                "ap_diff_ci", "within_group_gain", "within_group_p_adjusted"):  # fmt: skip
        assert key in target
    group = doc["partitions"][0]
    for key in ("n_loci", "n_positive", "ap_model", "ap_random_expected", "p", "p_adjusted"):
        assert key in group
    broken = dict(doc, leakage="high")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json_schema())
    assert report.to_dict()["call"] == doc["call"]


def test_report__html_and_notebook_show_the_figure(tiny: dict, tmp_path: Path) -> None:
    report = audit_predictions(memorising(tiny, ["E003"]), tiny["ds"],
                               html_path=tmp_path / "a.html", figure=tmp_path / "a.png")  # fmt: skip
    page = (tmp_path / "a.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1
    assert 'src="data:image/png;base64,' in report._repr_html_()
    fig = report.figure()
    title = fig._suptitle.get_text()
    assert title.startswith("E003: memorising")
    assert f"{report.to_frame().iloc[-1]['ap_model']:.3f} [" in title
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("model: AP") and "[" in t for t in legend)
    assert any("expected AP" in t for t in fig.axes[1].get_legend_handles_labels()[1])


def test_read_prediction_table__gzipped_table_named_tsv_is_read(tiny: dict, tmp_path: Path) -> None:
    import gzip

    pred = memorising(tiny, ["E003"])
    with gzip.open(tmp_path / "pred.tsv", "wt") as fh:  # gzip inside, .tsv outside
        pred.to_csv(fh, sep="\t", index=False)
    pd.testing.assert_frame_equal(
        audit_predictions(tmp_path / "pred.tsv", tiny["ds"]).to_frame(),
        audit_predictions(pred, tiny["ds"]).to_frame(),
    )


def test_score_target__pooled_targets_on_different_chromosomes_keep_distinct_blocks() -> None:
    from pitfall.audit.metrics import Options, pool, score_target

    # chr1 at loci 0..99, chr2 at 100..199, each 1 Mb long: ten 100 kb blocks each
    n = 200
    rng = np.random.default_rng(3)
    labels = (rng.random((3, n)) < 0.4).astype(np.float32)
    chrom = np.array(["chr1"] * 100 + ["chr2"] * 100)
    start = (np.arange(n) % 100) * 10_000
    ds = xr.Dataset(
        {"label": (("cell_type", "locus"), labels)},
        coords={"cell_type": ["A", "B", "C"], "locus": np.arange(n), "chrom": ("locus", chrom),
                "start": ("locus", start), "end": ("locus", start + 10_000)},
    )  # fmt: skip
    options = Options(block_size=100_000)
    on_chr2, on_chr1 = np.arange(100, 200), np.arange(0, 100)
    a = score_target(ds, "A", on_chr2, rng.random(100), ["C"], train_chroms=None, options=options)
    b = score_target(ds, "B", on_chr1, rng.random(100), ["C"], train_chroms=None, options=options)
    pooled = pool([a, b])
    # by hand: chromosome by its place in the cube, block by start // block_size
    code = {"chr1": 0, "chr2": 1}
    loci = np.r_[on_chr2, on_chr1]
    by_hand = np.array([code[c] for c in chrom[loci]]) * 2**40 + start[loci] // 100_000
    np.testing.assert_array_equal(pooled.block_keys[pooled.blocks], by_hand)
    assert pooled.block_keys.size == 20
