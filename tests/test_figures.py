"""The figures' numbers (pitfall.experiments) against independent oracles, and the figures' panels,
labels and legibility (pitfall._plotting and each experiment's plot) by their artists' text and boxes, never their pixels.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score

from pitfall import _plotting as plotting
from pitfall import cube
from pitfall.experiments import figure1, figure_s4, figure_s5, preprint_s1, preprint_s2

plt = plotting.pyplot()


def _boxes(artists, renderer) -> list:
    return [a.get_window_extent(renderer) for a in artists if a.get_visible() and a.get_text()]


def _overlapping(boxes) -> list:
    return [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]


# ------------------------------------------------------------------ tiny cube

# 5 cell types x 12 loci: chr1 (0-5) tests, chr2 (6-11) trains the similarity.
LABELS = {
    "T": [1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0],
    "A": [1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1],
    "B": [1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0],
    "C": [0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1],
    "D": [1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
}
GROUPS = {"T": "ES", "A": "ES", "B": "blood", "C": "blood", "D": "brain"}


@pytest.fixture
def small(tmp_path: Path) -> xr.Dataset:
    loci = cube.make_loci(["chr1"] * 6 + ["chr2"] * 6, np.arange(12) * 100,
                          np.arange(12) * 100 + 50)  # fmt: skip
    rng = np.random.default_rng(5)
    slabs = []
    for ct, lab in LABELS.items():
        lab = np.array(lab, float)
        # three marks: one follows the label, two are noise
        sig = np.column_stack([lab * 2 + rng.normal(0, 0.3, 12), rng.normal(size=(12, 2))])
        slabs.append(cube.make_slab(ct, loci, label=lab, value=lab * 10 + rng.random(12),
                                    signal=sig, marks=["m1", "m2", "m3"], name=f"{ct} cells",
                                    group=GROUPS[ct], assembly="x"))  # fmt: skip
    cube.create_cube(tmp_path / "c", slabs)
    return cube.open_cube(tmp_path / "c")


# ------------------------------------------------------------------ S5 numbers


def test_baseline_vs_similarity__every_target_against_sklearn_and_numpy(small) -> None:
    table = figure_s5.baseline_vs_similarity(small, ["chr2"], ["chr1"])
    lab = {k: np.array(v, float) for k, v in LABELS.items()}
    assert table["cell_type"].tolist() == list(LABELS)
    assert table.attrs == {"on": "label", "n_train_loci": 6, "n_test_loci": 6}
    for ct in LABELS:
        row = table.set_index("cell_type").loc[ct]
        others = [c for c in LABELS if c != ct]
        avg = np.mean([lab[c][:6] for c in others], axis=0)
        assert row.ap == pytest.approx(average_precision_score(lab[ct][:6], avg))
        assert row.prevalence == pytest.approx(lab[ct][:6].mean())
        assert row.ap_normalised == pytest.approx((row.ap - row.prevalence) / (1 - row.prevalence))
        r = [np.corrcoef(lab[ct][6:], lab[c][6:])[0, 1] for c in others]
        assert row.mean_similarity == pytest.approx(np.mean(r))
        assert row.max_similarity == pytest.approx(np.max(r))
        assert row.most_similar == others[int(np.argmax(r))]
        assert row["group"] == GROUPS[ct] and row["name"] == f"{ct} cells"
    value = figure_s5.baseline_vs_similarity(small, ["chr2"], ["chr1"], on="value")
    vals = small["value"].values[:, 6:]
    r = np.corrcoef(np.log1p(vals))[0, 1:]
    assert value["mean_similarity"].iloc[0] == pytest.approx(r.mean())
    with pytest.raises(ValueError, match="no loci"):
        figure_s5.baseline_vs_similarity(small, ["chr9"], ["chr1"])


def test_similarity_summary__spearman_as_scipy() -> None:
    t = pd.DataFrame({"mean_similarity": [0.1, 0.4, 0.3, 0.9], "max_similarity": [1, 2, 3, 4],
                      "ap": [0.5, 0.7, 0.8, 0.9], "ap_normalised": [0.1, 0.2, 0.1, 0.3],
                      "prevalence": [0.3, 0.2, 0.5, 0.4]})  # fmt: skip
    got = figure_s5.similarity_summary(t)
    ref = stats.spearmanr(t["mean_similarity"], t["ap"])
    assert got["mean_similarity vs ap"]["rho"] == pytest.approx(ref.statistic)
    assert got["mean_similarity vs ap"]["p"] == pytest.approx(ref.pvalue)
    assert set(got) == {"mean_similarity vs ap", "mean_similarity vs ap_normalised",
                        "max_similarity vs ap", "max_similarity vs ap_normalised",
                        "prevalence vs ap"}  # fmt: skip


# ------------------------------------------------------------------ preprint S1 numbers


def test_signal_embedding__pca_as_sklearn_and_a_note_without_umap(small) -> None:
    emb = preprint_s1.signal_embedding(small, "T", umap=False)
    x = small["signal"].sel(cell_type="T").values
    z = (x - x.mean(0)) / x.std(0)
    pca = PCA(2).fit(z)
    ref = pca.transform(z)
    for k in range(2):  # a component's sign is arbitrary
        col = emb[f"PC{k + 1}"].to_numpy()
        assert np.allclose(col, ref[emb["locus"], k], atol=1e-9) or np.allclose(
            col, -ref[emb["locus"], k], atol=1e-9
        )
    np.testing.assert_allclose(emb.attrs["explained"], pca.explained_variance_ratio_)
    assert emb["label"].tolist() == [LABELS["T"][i] for i in emb["locus"]]
    assert "UMAP1" not in emb and "PCA only" in emb.attrs["note"]
    assert (emb.attrs["n_loci"], emb.attrs["features"]) == (12, 3)
    few = preprint_s1.signal_embedding(small, "T", umap=False, max_points=5)
    assert len(few) == 5 and few["locus"].is_monotonic_increasing


def test_signal_embedding__without_umap_learn_says_so(small, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_umap(name, *args, **kw):
        if name == "umap":
            raise ImportError("no umap here")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    emb = preprint_s1.signal_embedding(small, "T", umap=True)
    assert "UMAP1" not in emb and "umap-learn is not installed" in emb.attrs["note"]
    fig = preprint_s1.plot(emb, "S1")
    assert [ax.get_title() for ax in fig.axes] == ["PCA"]
    assert any("umap-learn is not installed" in t.get_text() for t in fig.texts)
    plt.close(fig)
    # with UMAP's columns (whatever computed them) the figure has its second panel
    both = emb.assign(UMAP1=emb["PC1"] * 2, UMAP2=emb["PC2"])
    both.attrs = {**emb.attrs, "note": ""}
    fig = preprint_s1.plot(both, "S1")
    assert [ax.get_title() for ax in fig.axes] == ["PCA", "UMAP"]
    assert fig.axes[0].get_xlabel().startswith("PC1 (")
    assert [t.get_text() for t in fig.texts] == ["S1"]  # the title, no note
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["inactive", "active"]
    plt.close(fig)


# ------------------------------------------------------------------ figures


def test_log_axis__trees_range_labels_do_not_overlap() -> None:
    # the trees figure: 16 to 800 leaves, where matplotlib's default labels minor ticks
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    x = [16, 17, 160, 170, 800, 850]
    ax.scatter(x, np.linspace(0.6, 0.9, 6))
    plotting.log_axis(ax, x)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_text()]
    shown = {t.get_text() for t in labels}
    assert {"20", "50", "100", "200", "500"} <= shown
    assert not _overlapping(_boxes(labels, r))
    assert all(not t.get_text() for t in ax.get_xticklabels(minor=True))
    plt.close(fig)
    # the real-label trees figure: 142 to 34,418 leaves on a half-width panel
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = [142, 550, 2600, 10500, 34418]
    ax.scatter(x, np.linspace(0.6, 0.9, 5))
    plotting.log_axis(ax, x)
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_text()]
    assert {"1,000", "10,000"} <= {t.get_text() for t in labels}
    assert not _overlapping(_boxes(labels, fig.canvas.get_renderer()))
    plt.close(fig)
    fig, ax = plt.subplots()
    plotting.log_axis(ax, [10, 5e6])
    ax.set_xlim(10, 5e6)
    fig.canvas.draw()
    assert {"$\\mathdefault{10^{2}}$", "$\\mathdefault{10^{6}}$"} <= {
        t.get_text() for t in ax.get_xticklabels()
    }
    plt.close(fig)


def test_ap_vs_params__one_panel_per_setting_readable_ticks() -> None:
    rows = [{"setting": s, "inputs": i, "n_params": n, "ap": 0.7, "status": "ok",
             "ap_average_activity": 0.98, "ap_random": 0.66}
            for s in ("cross-chromosome", "cross-cell-type", "hybrid")
            for i, n in (("signal", 16), ("sequence", 160), ("random", 800))]  # fmt: skip
    fig = figure1.plot(pd.DataFrame(rows), xlabel="trees x leaves")
    assert [ax.get_title() for ax in fig.axes] == ["cross-chromosome", "cross-cell-type", "hybrid"]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert ax.get_xlabel() == "trees x leaves"
        assert not _overlapping(_boxes(ax.get_xticklabels(which="both"), r))
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"epigenomic", "sequence", "locus-constant random (control)"} <= legend
    plt.close(fig)


def test_partitioned_boxes__controls_boxed_and_tested_apart() -> None:
    rng = np.random.default_rng(0)
    rows = [{"group": g, "predictor": p, "model": f"{p}{i}", "ap": rng.random()}
            for g in range(4) for p, n in (("signal", 3), ("sequence", 4), ("random", 2))
            for i in range(n)]  # fmt: skip
    rows += [{"group": g, "predictor": "random ranking (expected AP)", "model": "", "ap": 0.5}
             for g in range(4)]  # fmt: skip
    tests = pd.DataFrame({"comparison": ["epigenomic > sequence"] * 4
                          + ["epigenomic > locus-constant random (control)"] * 4,
                          "group": list(range(4)) * 2, "p_value": [0.03, 0.2, 0.5, 0.01] * 2,
                          "p_floor": [1 / 35] * 4 + [0.1] * 4})  # fmt: skip
    fig = figure_s4.plot(pd.DataFrame(rows), tests, title="S4")
    boxes, pvals = fig.axes
    assert boxes.get_title() == "S4"
    legend = [t.get_text() for t in boxes.get_legend().get_texts()]
    assert legend == ["random ranking (expected AP)", "epigenomic (3 models)",
                      "sequence (4 models)", "locus-constant random (control) (2 models)"]  # fmt: skip
    lines = [t.get_text() for t in pvals.get_legend().get_texts()]
    assert lines[:2] == ["epigenomic > sequence", "epigenomic > locus-constant random (control)"]
    assert pvals.lines[0].get_linestyle() == "-" and pvals.lines[1].get_linestyle() == "--"
    np.testing.assert_allclose(pvals.lines[0].get_ydata(), -np.log10([0.03, 0.2, 0.5, 0.01]))
    # shaded: beyond the reach of every comparison, i.e. above the lowest floor (1/35, the
    # paper's comparison's), not the control's 0.1, which the main test can pass
    (span,) = [p for p in pvals.patches if p.get_label().startswith("beyond reach")]
    assert span.get_y() == pytest.approx(-np.log10(1 / 35))
    assert pvals.get_ylim()[1] > -np.log10(0.01)
    plt.close(fig)


def test_place_labels__no_two_labels_or_markers_overlap() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(25), rng.random(25)
    x[:6] = 0.5 + np.arange(6) * 0.004  # a tight cluster, where labels collided before
    y[:6] = 0.5
    fig, ax = plt.subplots(figsize=(6, 4.6))
    ax.scatter(x, y, s=28)
    fig.tight_layout()
    anns = plotting.place_labels(ax, x, y, [f"E{i:03d}" for i in range(25)])
    placed = [a for a in anns if a is not None]
    assert len(placed) >= 20
    r = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(r) for a in placed]
    from matplotlib.text import Text

    text_boxes = [Text.get_window_extent(a, r) for a in placed]
    assert not _overlapping(text_boxes)
    pts = ax.transData.transform(np.column_stack([x, y]))
    for bb in text_boxes:
        assert not any(bb.contains(px, py) for px, py in pts)
    assert all(b.width > 0 for b in boxes)
    plt.close(fig)


def test_baseline_vs_similarity__two_panels_with_scipys_spearman(small) -> None:
    table = figure_s5.baseline_vs_similarity(small, ["chr2"], ["chr1"])
    fig = figure_s5.plot(table, title="S5", n_labels=3)
    a, b = fig.axes
    ref = stats.spearmanr(table["mean_similarity"], table["ap"])
    assert a.get_title().startswith(f"Spearman rho = {ref.statistic:.2f}")
    ref_n = stats.spearmanr(table["mean_similarity"], table["ap_normalised"])
    assert b.get_title().startswith(f"Spearman rho = {ref_n.statistic:.2f}")
    assert {t.get_text() for t in b.get_legend().get_texts()} == {"ES", "blood", "brain"}
    # colour-blind safe: every group's points in an Okabe-Ito colour, each with its own marker
    from matplotlib.colors import to_hex

    points = [c for c in a.collections if c.get_label() in {"ES", "blood", "brain"}]
    colours = {to_hex(c.get_facecolor()[0]).upper() for c in points}
    assert len(points) == 3 and colours <= set(plotting.OKABE_ITO) and len(colours) == 3
    assert len({tuple(c.get_paths()[0].vertices.ravel().round(3)) for c in points}) == 3
    labelled = {t.get_text() for t in a.texts} - {"a"}
    assert labelled <= set(table.nsmallest(3, "ap")["cell_type"]) and labelled
    assert fig._suptitle.get_text() == "S5"
    plt.close(fig)


def test_group_styles__every_pair_distinct_and_colour_blind_safe() -> None:
    groups = [f"g{i}" for i in range(70)]
    styles = plotting.group_styles(groups)
    assert len(set(styles.values())) == 70  # no two groups look alike
    assert {c for c, _ in styles.values()} == set(plotting.OKABE_ITO)
    # neighbours in a legend differ in colour and in marker
    for a, b in zip(groups, groups[1:], strict=False):
        assert styles[a][0] != styles[b][0] and styles[a][1] != styles[b][1]


def test_gaussians__data_panel_and_flat_ap_panel() -> None:
    t = pd.DataFrame({"size": [1, 64], "n_params": [5, 257], "seed": 0, "ap": [0.84, 0.85],
                      "ap_bayes": 0.852, "prevalence": 0.5})  # fmt: skip
    g1, g2 = np.meshgrid(np.linspace(-3, 3, 5), np.linspace(-3, 3, 5))
    sweep = preprint_s2.GaussianSweep(t, pd.DataFrame({"x1": [0, 1], "x2": [1, 0], "label": [0, 1]}),
                              (g1, g2), {1: (g1 + g2 > 0) * 1.0, 64: (g1 > 0) * 1.0}, 1.5)  # fmt: skip
    fig = preprint_s2.plot(sweep, "S2")
    a, b = fig.axes
    assert a.get_title().startswith("(a)") and b.get_title().startswith("(b)")
    legend_a = [t.get_text() for t in a.get_legend().get_texts()]
    assert "Bayes-optimal boundary" in legend_a
    assert "network, 1 hidden unit (5 parameters)" in legend_a
    assert "network, 64 hidden units (257 parameters)" in legend_a
    # legends sit below the axes, off the data
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in (a, b):
        assert ax.get_legend().get_window_extent(r).y1 < ax.get_window_extent(r).y0
    assert "spread over sizes: 0.010" in " ".join(t.get_text() for t in b.texts)
    plt.close(fig)
