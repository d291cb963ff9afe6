"""Figure S4 (preprint S3): the paper's partitioned test, over the models' per-group APs.

The oracle is scipy's ``mannwhitneyu`` called by hand on the APs written into each test,
and sklearn's average precision on hand-made scores; the function under test must give
the same numbers and must never pool a control into the sequence side.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from sklearn.metrics import average_precision_score

from pitfall import cube, evaluate, splits
from pitfall.experiments import figure_s4

# Per-group APs of hand-made models: 3 epigenomic, 4 sequence, 2 per control.
APS = {
    # group: {predictor: [AP of each model]}
    0: {"signal": [0.90, 0.85, 0.80], "sequence": [0.50, 0.60, 0.55, 0.70],
        "random": [0.10, 0.12], "permuted": [0.20, 0.22]},
    1: {"signal": [0.60, 0.70, 0.65], "sequence": [0.62, 0.70, 0.50, 0.66],
        "random": [0.95, 0.99], "permuted": [0.30, 0.31]},
    # a tie across sides and a NaN (a group with no positive locus for one model)
    2: {"signal": [0.40, np.nan, 0.45], "sequence": [0.40, 0.30, 0.20, 0.35],
        "random": [0.00, 0.01], "permuted": [0.02, 0.03]},
}  # fmt: skip


def _table() -> pd.DataFrame:
    rows = [
        {"group": g, "predictor": pred, "model": f"{pred} {i}", "ap": ap}
        for g, preds in APS.items()
        for pred, aps in preds.items()
        for i, ap in enumerate(aps)
    ]
    return pd.DataFrame(rows)


def test_mann_whitney_by_group__equals_scipy_on_the_models_aps() -> None:
    res = evaluate.mann_whitney_by_group(_table(), "signal", "sequence", "greater")
    assert list(res.columns) == ["group", "n_a", "n_b", "U", "p_value", "p_floor"]
    assert res["group"].tolist() == [0, 1, 2]
    for g, preds in APS.items():
        a = [x for x in preds["signal"] if not np.isnan(x)]
        b = preds["sequence"]
        ref = stats.mannwhitneyu(a, b, alternative="greater")
        row = res[res.group == g].iloc[0]
        assert (row.n_a, row.n_b) == (len(a), len(b))
        assert row.U == pytest.approx(ref.statistic)
        assert row.p_value == pytest.approx(ref.pvalue)


def test_mann_whitney_by_group__perfect_separation_hits_the_exact_floor() -> None:
    row = evaluate.mann_whitney_by_group(_table(), "signal", "sequence").iloc[0]
    # group 0: every epigenomic AP above every sequence AP: U = 3 * 4, and the exact
    # one-sided p is the one arrangement out of C(7, 3)
    assert row.U == 12
    assert row.p_value == pytest.approx(1 / math.comb(7, 3))
    assert row.p_floor == pytest.approx(1 / 35)
    two = evaluate.mann_whitney_by_group(_table(), "signal", "sequence", "two-sided").iloc[0]
    assert two.p_floor == pytest.approx(2 / 35)
    assert two.p_value == pytest.approx(
        stats.mannwhitneyu([0.9, 0.85, 0.8], [0.5, 0.6, 0.55, 0.7]).pvalue
    )


def test_mann_whitney_by_group__three_models_a_side_cannot_pass_five_percent() -> None:
    t = pd.DataFrame(
        {
            "group": 0,
            "predictor": ["signal"] * 3 + ["sequence"] * 3,
            "ap": [0.9, 0.95, 0.99, 0.1, 0.2, 0.3],
        }
    )
    row = evaluate.mann_whitney_by_group(t, "signal", "sequence").iloc[0]
    assert row.p_floor == pytest.approx(0.05)
    assert row.p_value == pytest.approx(
        stats.mannwhitneyu([0.9, 0.95, 0.99], [0.1, 0.2, 0.3], alternative="greater").pvalue
    )
    assert row.p_value >= 0.05


def test_mann_whitney_by_group__controls_stay_out_unless_named() -> None:
    table = _table()
    alone = evaluate.mann_whitney_by_group(table, "signal", "sequence")
    without = evaluate.mann_whitney_by_group(
        table[~table.predictor.isin(["random", "permuted"])], "signal", "sequence"
    )
    pd.testing.assert_frame_equal(alone, without)
    # pooling the random control (group 1: APs 0.95, 0.99) into the sequence side would
    # change the answer: the test must be asked for it explicitly
    pooled = evaluate.mann_whitney_by_group(table, "signal", ["sequence", "random"])
    ref = stats.mannwhitneyu(
        APS[1]["signal"], APS[1]["sequence"] + APS[1]["random"], alternative="greater"
    )
    assert pooled.loc[pooled.group == 1, "p_value"].item() == pytest.approx(ref.pvalue)
    assert pooled.loc[pooled.group == 1, "p_value"].item() != pytest.approx(
        alone.loc[alone.group == 1, "p_value"].item()
    )


def test_mann_whitney_by_group__empty_side_is_nan_and_all_comes_last() -> None:
    t = pd.DataFrame(
        {
            "group": [1, 1, 0, "all", "all"],
            "predictor": ["signal", "sequence", "signal", "signal", "sequence"],
            "ap": [0.6, 0.5, 0.7, 0.65, 0.55],
        }
    )
    res = evaluate.mann_whitney_by_group(t, "signal", "sequence")
    assert res["group"].tolist() == [0, 1, "all"]
    row0 = res.iloc[0]
    assert (row0.n_a, row0.n_b) == (1, 0)
    assert np.isnan(row0.U) and np.isnan(row0.p_value) and np.isnan(row0.p_floor)


def test_mann_whitney_by_group__bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="both sides"):
        evaluate.mann_whitney_by_group(_table(), ["signal", "random"], ["random"])
    with pytest.raises(KeyError, match="no column"):
        evaluate.mann_whitney_by_group(_table().drop(columns="ap"), "signal", "sequence")


# ------------------------------------------------------------------ partitioned_table

# 6 cell types x 8 loci on chr1; T the target; A-E train. Activity groups of the loci =
# number of A-E active: 0, 1, 2, 3, 3, 4, 5, 5.
OTHERS = {
    "A": [0, 1, 1, 1, 0, 1, 1, 1],
    "B": [0, 0, 1, 1, 1, 1, 1, 1],
    "C": [0, 0, 0, 1, 1, 1, 1, 1],
    "D": [0, 0, 0, 0, 1, 1, 1, 1],
    "E": [0, 0, 0, 0, 0, 0, 1, 1],
}
TARGET = [1, 0, 1, 0, 1, 1, 0, 1]


@pytest.fixture
def small(tmp_path: Path) -> xr.Dataset:
    loci = cube.make_loci(["chr1"] * 8, np.arange(8) * 100, np.arange(8) * 100 + 50)
    labels = {"T": TARGET, **OTHERS}
    slabs = [
        cube.make_slab(ct, loci, label=np.array(v, float), assembly="x") for ct, v in labels.items()
    ]
    cube.create_cube(tmp_path / "c", slabs)
    return cube.open_cube(tmp_path / "c")


def test_partitioned_table__tests_each_control_apart_from_the_sequence_models(
    small: xr.Dataset, tmp_path: Path
) -> None:
    split = splits.Split(
        tuple(OTHERS), ("chr1",), (), (), ("T",), ("chr1",), setting="cross-cell-type"
    )
    rng = np.random.default_rng(3)
    models = [("signal", f"s{i}") for i in range(3)] + [("sequence", f"q{i}") for i in range(3)]
    models += [("random", "r0"), ("random", "r1"), ("permuted", "p0")]
    scores = {mid: rng.random(8) for _, mid in models}
    pred_dir = tmp_path / "results" / "predictions"
    pred_dir.mkdir(parents=True)
    for mid, s in scores.items():
        da = xr.DataArray(
            s[None, :].astype("float32"),
            dims=("cell_type", "locus"),
            coords={"cell_type": ["T"], "locus": np.arange(8)},
            name="score",
        )
        da.to_netcdf(pred_dir / f"{mid}.nc")
    results = pd.DataFrame(
        {
            "id": [m for _, m in models],
            "inputs": [p for p, _ in models],
            "label": [m for _, m in models],
        }
    )
    table, tests = figure_s4.partitioned_table(small, split, results, str(tmp_path / "results"))

    groups = np.array(OTHERS["A"]) + OTHERS["B"] + OTHERS["C"] + OTHERS["D"] + OTHERS["E"]
    y = np.array(TARGET)
    for mid, s in scores.items():
        for g in (2, 3, 5):  # groups with both classes: AP defined
            m = groups == g
            got = table[(table.model == mid) & (table.group == g)]["ap"].item()
            assert got == pytest.approx(average_precision_score(y[m], s[m]))
    # the reference within a group: a random ranking's expected AP, averaged here over every
    # order of the group's loci (the average activity ties there: its AP is the prevalence)
    m = groups == 3
    got = table[(table.predictor == figure_s4.RANDOM_RANKING) & (table.group == 3)]["ap"].item()
    orders = itertools.permutations(range(int(m.sum())))
    expected = np.mean(
        [average_precision_score(y[m][list(o)], -np.arange(m.sum())) for o in orders]
    )
    assert got == pytest.approx(expected, abs=1e-12)

    assert tests["comparison"].unique().tolist() == [
        name for name, _, _ in figure_s4.PARTITIONED_TESTS
    ]
    for name, a, b in figure_s4.PARTITIONED_TESTS:
        part = tests[tests.comparison == name]
        for g in (2, 3, 5):
            x = table[(table.predictor == a) & (table.group == g)]["ap"]
            z = table[(table.predictor == b) & (table.group == g)]["ap"]
            ref = stats.mannwhitneyu(x, z, alternative="greater")
            row = part[part.group == g].iloc[0]
            assert (row.n_a, row.n_b) == (len(x), len(z))
            assert row.p_value == pytest.approx(ref.pvalue)
    # the paper's comparison holds the 3 sequence models only, no control
    main = tests[tests.comparison == "epigenomic > sequence"]
    assert set(main.loc[main.p_value.notna(), "n_b"]) == {3}
    summary = figure_s4.partitioned_summary(tests)
    assert summary["epigenomic > sequence"]["p_floor"] == pytest.approx(0.05)
    assert summary["epigenomic > sequence"]["reachable"] == 0
    floor_groups = main[np.isclose(main.p_value, 0.05)]
    assert summary["epigenomic > sequence"]["at_floor"] == len(floor_groups)
