"""pitfall.audit on the tiny synthetic compendium's expression cube."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from pitfall.audit import AuditWarning, add_audit_parser, audit, read_predictions, run_audit_cli
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
    """The verdict flags follow the documented rules from the reported numbers."""
    row = report.to_frame().set_index("cell_type").loc["pooled"]
    beats = row["ap_model"] > row["ap_average_activity"] + margin
    within = row["within_group_gain"] > margin and row["within_group_p"] < 0.05
    assert report.beats_baseline == beats
    assert report.beats_within_groups == within
    assert report.memorising == (not within and row["spearman_avg"] > 0.8)


# ------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("targets", [["E003"], ["E003", "E004"]])
def test_memorising_model_is_flagged(tiny: dict, targets: list[str]) -> None:
    report = audit(memorising(tiny, targets), tiny["ds"])
    frame = report.to_frame()
    assert list(frame["cell_type"]) == [*targets, "pooled"]
    assert report.memorising and not report.beats_within_groups
    assert "likely memorising locus activity" in report.verdict
    assert (frame["spearman_avg"] > 0.9).all()
    assert (frame["call"] == "memorising").all()
    _check_rules(report)


def test_own_signal_model_is_not_flagged(tiny: dict) -> None:
    report = audit(own_signal(tiny), tiny["ds"])
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
    if report.beats_baseline:
        assert report.verdict.startswith("beats the average-activity baseline")
    else:
        assert report.verdict.startswith("does not beat the average-activity baseline")


def test_logistic_regression_on_own_signal(tiny: dict) -> None:
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
    report = audit(pred, ds)
    _check_rules(report)
    assert not report.memorising
    assert report.to_frame().iloc[-1]["n_scored"] == len(score)
    # The other half of the loci (unscored) is where labels-based similarity would look.
    assert report.settings["similarity_on"] == "signal"


# ------------------------------------------------------------------------- numbers


def test_aps_equal_sklearn(tiny: dict) -> None:
    act, cts, _, _ = _activity(tiny)
    pred = memorising(tiny, ["E003", "E004"], seed=3)
    report = audit(pred, tiny["ds"])
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
        assert frame.loc[t, "ap_random"] == pytest.approx(y.mean())
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
    assert row["auroc_baseline"] == 0.5


def test_leakage(tiny: dict) -> None:
    ds = tiny["ds"]
    others = ["E004", "E037", "E106", "E113", "E116"]
    pred = memorising(tiny, ["E003"])
    full = audit(pred, ds, train_cell_types=others, train_chroms=["chr1", "chr2", "chr3"])
    assert full.leakage == 1.0
    assert "100% of the scored loci were labelled in training" in full.verdict
    _, _, gene_id, chrom = _activity(tiny)
    on_chr1 = pred[np.isin(pred.index, np.flatnonzero(chrom == "chr1"))]
    hybrid = audit(on_chr1, ds, train_cell_types=others, train_chroms=["chr2", "chr3"])
    assert hybrid.leakage == 0.0
    assert hybrid.to_frame().iloc[-1]["n_scored"] == np.sum(chrom == "chr1")
    assert audit(pred, ds).leakage is None
    # Training cell types also set the baseline's reference
    two = audit(pred, ds, train_cell_types=["E004", "E037"])
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


def test_file_formats_round_trip(tiny: dict, tmp_path: Path) -> None:
    ds = tiny["ds"]
    pred = memorising(tiny, ["E003", "E004"])
    ref = audit(pred, ds).to_frame()
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
    for src in [*(tmp_path / f for f in inputs), da, pos]:
        got = audit(src, tiny["store"]).to_frame()
        pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-6)
    long = read_predictions(tmp_path / "p.nc")
    assert list(long.columns) == ["locus", "cell_type", "score"] and len(long) == len(pred)


# ------------------------------------------------------------------------- bad input


def test_unknown_loci_warn_with_counts(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    pred.loc[:2, "gene_id"] = ["NOPE1", "NOPE2", "NOPE3"]
    with pytest.warns(AuditWarning, match=r"3 locus name\(s\).*3 rows.*NOPE1"):
        report = audit(pred, tiny["ds"])
    assert report.to_frame().iloc[-1]["n_scored"] == len(pred) - 3
    pred["gene_id"] = "NOPE"
    pred["gene_id"] += pd.Series(np.arange(len(pred))).astype(str)
    with pytest.raises(ValueError, match=r"none of the 400 predicted loci matches"):
        audit(pred, tiny["ds"])


def test_unknown_cell_types(tiny: dict) -> None:
    pred = memorising(tiny, ["E003", "E004"])
    pred.loc[pred["cell_type"] == "E004", "cell_type"] = "E999"
    with pytest.warns(AuditWarning, match=r"1 cell type.*E999.*400 rows"):
        report = audit(pred, tiny["ds"])
    assert list(report.to_frame()["cell_type"]) == ["E003", "pooled"]
    with pytest.raises(ValueError, match=r"target cell type\(s\) \['E999'\] absent"):
        audit(pred[pred["cell_type"] == "E999"], tiny["ds"])
    with pytest.raises(ValueError, match=r"training cell type\(s\) \['E998'\]"):
        audit(memorising(tiny, ["E003"]), tiny["ds"], train_cell_types=["E004", "E998"])


def test_nan_and_constant_scores_warn(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    pred.loc[[5, 6, 7, 8], "score"] = np.nan
    with pytest.warns(AuditWarning, match=r"4 of 400 scores are NaN"):
        report = audit(pred, tiny["ds"])
    assert report.to_frame().iloc[-1]["n_scored"] == 396
    assert any("NaN" in w for w in report.warnings)
    pred["score"] = 0.3
    with pytest.warns(AuditWarning, match=r"all 400 scores are equal.*AP equals the prevalence"):
        report = audit(pred, tiny["ds"])
    row = report.to_frame().iloc[-1]
    assert row["ap_model"] == pytest.approx(row["prevalence"])


def test_duplicates_and_missing_columns_error(tiny: dict) -> None:
    pred = memorising(tiny, ["E003"])
    dup = pd.concat([pred, pred.iloc[:3]], ignore_index=True)
    with pytest.raises(ValueError, match=r"6 prediction rows repeat.*3 distinct pairs"):
        audit(dup, tiny["ds"])
    # the same gene with and without its version suffix is a duplicate too
    versioned = pred.iloc[:1].assign(gene_id=str(tiny["ds"]["name"].values[0]))
    with pytest.raises(ValueError, match=r"2 prediction rows repeat"):
        audit(pd.concat([pred, versioned]), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a score column: expected one of \['score'"):
        audit(pred.rename(columns={"score": "value"}), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a locus column.*'locus', 'name', 'gene_id'"):
        audit(pred.rename(columns={"gene_id": "g"}), tiny["ds"])
    with pytest.raises(ValueError, match=r"lack a cell type column"):
        audit(pred.drop(columns="cell_type"), tiny["ds"])


# ------------------------------------------------------------------------- outputs


def test_report_outputs(tiny: dict, tmp_path: Path) -> None:
    report = audit(
        memorising(tiny, ["E003"]),
        tiny["ds"],
        json_path=tmp_path / "r.json",
        figure=tmp_path / "r.png",
    )
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["memorising"] is True and d["verdict"] == report.verdict
    assert d["summary"][-1]["cell_type"] == "pooled" and d["leakage"] is None
    assert (tmp_path / "r.png").stat().st_size > 10_000
    text = str(report)
    assert "AP model" in text and "verdict: does not beat" in text


def test_cli(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred = memorising(tiny, ["E003"])
    pred.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    ap = argparse.ArgumentParser(prog="pitfall")
    add_audit_parser(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(
        [
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
    )
    assert args.func is run_audit_cli
    assert run_audit_cli(args) == 0
    out = capsys.readouterr().out
    assert "pooled" in out and "likely memorising" in out
    d = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert d["leakage"] == 1.0
