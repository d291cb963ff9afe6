"""Tests of pitfall.synth: the written files parse with independent readers and match the truth."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitfall import cli
from pitfall.synth import (
    BIN_MOTIF,
    CELL_TYPES,
    CORE_MARKS,
    GENE_MOTIF,
    MARK_EFFECTS,
    PRESETS,
    SynthCompendium,
    SynthParams,
    synthesize,
)
from pitfall.synth.model import (
    cell_table,
    layout_bins,
    observed_matrix,
    simulate,
    simulate_imputation,
)


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory) -> SynthCompendium:
    return synthesize(tmp_path_factory.mktemp("tiny"), "tiny")


@pytest.fixture(scope="module")
def truth(comp: SynthCompendium) -> dict[str, np.ndarray]:
    return comp.truth()


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".fai")
    }


def _read_gtf(path: Path) -> pd.DataFrame:
    cols = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attr"]
    return pd.read_csv(path, sep="\t", comment="#", header=None, names=cols)


def _window_arcsinh_means(bw_path: Path, truth: dict[str, np.ndarray]) -> np.ndarray:
    """The naive oracle: per-base arcsinh over each clipped window, no data as 0, then mean."""
    with pyBigWig.open(str(bw_path)) as bw:
        return np.array(
            [
                np.nan_to_num(np.arcsinh(bw.values(str(c), int(s), int(e), numpy=True))).mean()
                for c, s, e in zip(
                    truth["chrom"], truth["window_start"], truth["window_end"], strict=True
                )
            ]
        )


# --------------------------------------------------------------------------- files parse


def test_fasta__parses_with_pyfaidx_and_matches_chrom_sizes(comp: SynthCompendium) -> None:
    sizes = pd.read_csv(comp.chrom_sizes, sep="\t", header=None, names=["chrom", "size"])
    fa = pyfaidx.Fasta(str(comp.fasta))
    assert list(fa.keys()) == list(sizes.chrom) == ["chr1", "chr2", "chr3"]
    assert [len(fa[c]) for c in sizes.chrom] == list(sizes["size"])
    lines = comp.fasta.read_text().splitlines()
    assert max(len(x) for x in lines) == 60
    seq = "".join(str(fa[c][:]) for c in sizes.chrom)
    assert set(seq) <= set("ACGTacgtN")
    assert 0.05 < sum(ch.islower() for ch in seq) / len(seq) < 0.5  # soft-masked stretches
    assert "N" * 100 in seq


def test_gtf__both_strands_versioned_ids_sorted(comp: SynthCompendium) -> None:
    gtf = _read_gtf(comp.gtf)
    assert len(gtf) == PRESETS["tiny"].n_genes
    assert set(gtf.strand) == {"+", "-"}
    assert (gtf.feature == "gene").all()
    ids = gtf.attr.str.extract(r'gene_id "([^"]+)"')[0]
    assert ids.str.fullmatch(r"SYNG\d{8}\.\d+").all() and ids.is_unique
    assert gtf.attr.str.contains('gene_type "protein_coding"').all()
    order = gtf.chrom.str[3:].astype(int) * 10**10 + gtf.start
    assert order.is_monotonic_increasing
    assert (gtf.start <= gtf.end).all()


def test_gtf__upstream_windows_distinct_and_two_run_past_chrom_ends(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    gtf = _read_gtf(comp.gtf)
    sizes = dict(line.split("\t") for line in comp.chrom_sizes.read_text().splitlines())
    w = comp.params.window
    tss = np.where(gtf.strand == "+", gtf.start - 1, gtf.end - 1)  # 0-based
    lo = np.where(gtf.strand == "+", tss - w, tss + 1)
    hi = lo + w
    clen = gtf.chrom.map(lambda c: int(sizes[c])).to_numpy()
    assert ((lo < 0) | (hi > clen)).sum() == 2
    np.testing.assert_array_equal(np.clip(lo, 0, clen), truth["window_start"])
    np.testing.assert_array_equal(np.clip(hi, 0, clen), truth["window_end"])
    for chrom in sizes:
        sel = (gtf.chrom == chrom).to_numpy()
        body_lo, body_hi = gtf.start.to_numpy()[sel] - 1, gtf.end.to_numpy()[sel]
        for a, b in zip(lo[sel], hi[sel], strict=True):
            # A window meets exactly one gene (its own, at the TSS edge) and no other window.
            assert ((body_lo < b) & (body_hi > a)).sum() == 0
            assert ((lo[sel] < b) & (hi[sel] > a)).sum() == 1


def test_rpkm__stray_tab_columns_and_label_rule(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    with gzip.open(comp.rpkm, "rt") as fh:
        header, first = fh.readline(), fh.readline()
    assert not header.endswith("\t\n") and first.endswith("\t\n")
    df = pd.read_csv(comp.rpkm, sep="\t", index_col=False)
    assert list(df.columns) == ["gene_id", *sorted(comp.cell_types)]
    assert df.gene_id.is_monotonic_increasing
    assert not df.gene_id.str.contains(".", regex=False).any()
    # index_col=0 is the trap: the stray tab shifts every column by one, as in Roadmap's.
    first, second = sorted(comp.cell_types)[:2]
    shifted = pd.read_csv(comp.rpkm, sep="\t", index_col=0)
    assert shifted.columns[0] == "gene_id"
    np.testing.assert_array_equal(shifted[first].to_numpy(), df[second].to_numpy())
    table = df.set_index("gene_id")
    base = [g.split(".")[0] for g in truth["gene_id"]]
    values = table.loc[base, list(comp.cell_types)].to_numpy().T
    assert (values >= 0).all()
    np.testing.assert_array_equal((values > 0.5).astype(np.uint8), truth["activity"])
    np.testing.assert_array_equal(truth["activity"], truth["activity_level"] > 0)


def test_bigwig__opens_with_chroms_of_chrom_sizes(comp: SynthCompendium) -> None:
    sizes = {
        c: int(n) for c, n in (x.split("\t") for x in comp.chrom_sizes.read_text().splitlines())
    }
    assert set(comp.bigwigs) == set(comp.cell_types)
    for cid in comp.cell_types:
        assert list(comp.bigwigs[cid]) == list(CORE_MARKS)
        for path in comp.bigwigs[cid].values():
            with pyBigWig.open(str(path)) as bw:
                assert bw.isBigWig() and bw.chroms() == sizes
                vals = bw.values("chr1", 0, sizes["chr1"], numpy=True)
                covered = vals[~np.isnan(vals)]
                assert 0.005 < covered.size / vals.size < 0.5  # sparse, not every base
                assert (covered >= 0).all() and np.mean(covered) > np.median(covered)


def test_domains__sorted_mid_bin_and_give_truth_boundaries(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    size = comp.params.bin_size
    offset = {c: np.flatnonzero(truth["bin_chrom"] == c)[0] for c in np.unique(truth["bin_chrom"])}
    for c, cid in enumerate(comp.cell_types):
        bed = pd.read_csv(comp.domains[cid], sep="\t", header=None, names=["chrom", "s", "e"])
        assert len(bed) > 0
        assert (bed.s % size == size // 2).all() and (bed.e % size == size // 2).all()
        assert (bed.s < bed.e).all()
        assert (bed.chrom.str[3:].astype(int) * 10**10 + bed.s).is_monotonic_increasing
        # Rule of the truth: a bin is a boundary when a domain starts or ends in it; with
        # mid-bin edges both end rules agree.
        off = bed.chrom.map(offset).to_numpy()
        for end_bin in (bed.e.to_numpy() // size, (bed.e.to_numpy() - 1) // size):
            marked = np.zeros(truth["boundary"].shape[1], dtype=np.uint8)
            marked[off + bed.s.to_numpy() // size] = 1
            marked[off + end_bin] = 1
            np.testing.assert_array_equal(marked, truth["boundary"][c])


def test_manifests__parse_and_every_path_exists(comp: SynthCompendium) -> None:
    for path, kind in ((comp.manifest, "expression"), (comp.manifest_tad, "domains")):
        m = tomllib.loads(path.read_text())
        assert m["assembly"] == "synth1" and m["target"]["kind"] == kind
        assert m["signal"]["marks"] == list(CORE_MARKS)
        assert list(m["cell_types"]) == list(comp.cell_types)
        assert m["cell_types"]["E003"] == m["cell_types"]["E003"] | {"name": "H1", "group": "ES"}
        named = [m["sequence"]["fasta"], *(v for k, v in m["loci"].items() if isinstance(v, str))]
        named += [m["target"]["table"]] if kind == "expression" else []
        for spec in m["cell_types"].values():
            assert list(spec["signal"]) == list(CORE_MARKS)
            named += list(spec["signal"].values())
            named += [spec["target"]] if kind == "domains" else []
        for rel in named:
            assert not Path(rel).is_absolute() and (path.parent / rel).is_file(), rel
    tss = tomllib.loads(comp.manifest.read_text())["loci"]
    assert tss == {"tss": "genes.gtf.gz", "upstream": 2000, "downstream": 0}
    bins = tomllib.loads(comp.manifest_tad.read_text())["loci"]
    assert bins == {"bins": "chrom.sizes", "bin_size": 40000}


# --------------------------------------------------------------------------- determinism


def test_synthesize__same_seed_same_bytes_other_seed_differs(
    comp: SynthCompendium, tmp_path: Path
) -> None:
    # Two worker processes write the bigWigs: the bytes must not depend on it.
    again = _digests(synthesize(tmp_path / "a", "tiny", workers=2).root)
    assert again == _digests(comp.root)
    other = _digests(synthesize(tmp_path / "b", "tiny", seed=1).root)
    assert other.keys() == again.keys()
    differ = [k for k in again if again[k] != other[k]]
    assert "genome.fa" in differ and "rpkm.tsv.gz" in differ and "truth.npz" in differ
    assert "bigwig/E003-H3K4me3.bw" in differ and "domains/E003.bed" in differ
    assert "truth_imputation.npz" in differ and "manifest_imputation.toml" in differ


# --------------------------------------------------------------------------- the biology


def test_signal__h3k4me3_tracks_own_cell_type_not_others(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    sig = np.array(
        [_window_arcsinh_means(comp.bigwigs[cid]["H3K4me3"], truth) for cid in comp.cell_types]
    )
    level = truth["activity_level"]
    for c in range(len(comp.cell_types)):
        assert np.corrcoef(sig[c], truth["activity"][c])[0, 1] > 0.4
    # Shared propensity makes every cell type's signal correlate with every activity; what
    # must follow the own cell type is the deviation from the average over cell types.
    dev_sig, dev_level = sig - sig.mean(axis=0), level - level.mean(axis=0)
    corr = [
        np.corrcoef(dev_sig.ravel(), np.roll(dev_level, k, axis=0).ravel())[0, 1]
        for k in range(len(comp.cell_types))
    ]
    assert corr[0] > 0.15 and max(corr[1:]) < 0.05


def test_signal__repressive_mark_high_where_inactive(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    sig = _window_arcsinh_means(comp.bigwigs["E003"]["H3K27me3"], truth)
    act = truth["activity"][0].astype(bool)
    assert sig[~act].mean() > 2 * sig[act].mean()


def test_motifs__counts_read_back_from_fasta_equal_truth(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    fa = pyfaidx.Fasta(str(comp.fasta))
    counted = [
        str(fa[str(c)][int(s) : int(e)]).upper().count(GENE_MOTIF)
        for c, s, e in zip(truth["chrom"], truth["window_start"], truth["window_end"], strict=True)
    ]
    np.testing.assert_array_equal(counted, truth["motif_count"])
    # Motif density tracks the shared propensity, not one cell type's deviation from it.
    assert np.corrcoef(truth["motif_count"], truth["propensity"])[0, 1] > 0.4
    rc = BIN_MOTIF[::-1].translate(str.maketrans("ACGT", "TGCA"))
    size = comp.params.bin_size
    bins = np.zeros_like(truth["bin_motif_count"])
    for chrom in fa.keys():
        seq = str(fa[chrom][:]).upper()
        first = np.flatnonzero(truth["bin_chrom"] == chrom)[0]
        for motif in (BIN_MOTIF, rc):
            i = seq.find(motif)
            while i >= 0:
                bins[first + i // size] += 1
                i = seq.find(motif, i + 1)
    np.testing.assert_array_equal(bins, truth["bin_motif_count"])


def test_motifs__gene_copies_at_free_positions_not_on_a_grid(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    # The oracle: every copy a naive scan of the FASTA finds in a window, by its offset from
    # the window's start. Copies planted on a grid of the motif's length would all share one
    # residue modulo that length (up to the rare copies the random background makes).
    fa = pyfaidx.Fasta(str(comp.fasta))
    offsets = []
    for c, s, e in zip(truth["chrom"], truth["window_start"], truth["window_end"], strict=True):
        window = str(fa[str(c)][int(s) : int(e)]).upper()
        offsets += [m.start() for m in re.finditer(GENE_MOTIF, window)]
    offsets = np.array(offsets)
    assert offsets.size == truth["motif_count"].sum() > 200
    residue = np.bincount(offsets % len(GENE_MOTIF), minlength=len(GENE_MOTIF)) / offsets.size
    assert residue.min() > 0.04 and residue.max() < 0.25  # about 1/8 each
    # and spread over the whole window, to its last possible start
    w = comp.params.window
    assert offsets.min() < w // 20 and offsets.max() > w - len(GENE_MOTIF) - w // 20


def test_truth__shapes_and_pitfall_structure(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    n_c, n_g = len(comp.cell_types), comp.params.n_genes
    assert truth["activity"].shape == (n_c, n_g)
    assert truth["signal_level"].shape == (n_c, n_g, len(CORE_MARKS))
    assert truth["boundary"].shape == (n_c, truth["bin_start"].size)
    assert list(truth["cell_types"]) == [row[0] for row in CELL_TYPES[:n_c]]
    act = truth["activity"].mean(axis=0)
    # Most genes share their state across cell types; the target is neither all on nor off.
    assert np.mean((act == 0) | (act == 1)) > 0.5
    assert 0.4 < truth["activity"][0].mean() < 0.9
    assert 0.02 < truth["boundary"].mean() < 0.3


# --------------------------------------------------------------------------- artefacts


def _expected_factor(truth: dict[str, np.ndarray], chrom: str, length: int, m: int) -> np.ndarray:
    """Per base of ``chrom``: the artefact factor of the gene window or else the bin it lies in."""
    in_chrom = truth["bin_chrom"] == chrom
    size = int(truth["bin_end"][in_chrom][0] - truth["bin_start"][in_chrom][0])
    out = np.repeat(truth["bin_signal_artefact"][in_chrom, m], size)[:length]
    for s, e, f in zip(
        truth["window_start"][truth["chrom"] == chrom],
        truth["window_end"][truth["chrom"] == chrom],
        truth["signal_artefact"][truth["chrom"] == chrom, m],
        strict=True,
    ):
        out[s:e] = f
    return out


@pytest.fixture(scope="module")
def artefact_levels(
    comp: SynthCompendium, tmp_path_factory: pytest.TempPathFactory
) -> dict[float, SynthCompendium]:
    """The tiny compendium at artefact strengths 0, its default and twice its default."""
    s = comp.params.artefact_strength
    root = tmp_path_factory.mktemp("artefacts")
    return {
        0.0: synthesize(root / "zero", "tiny", artefact_strength=0.0),
        s: comp,
        2 * s: synthesize(root / "double", "tiny", artefact_strength=2 * s),
    }


def test_artefacts__one_factor_per_locus_and_mark_same_in_every_cell_type(
    artefact_levels: dict[float, SynthCompendium],
) -> None:
    zero, s, double = sorted(artefact_levels)
    assert zero == 0.0 < s
    comps = [artefact_levels[x] for x in (zero, s, double)]
    truth = comps[1].truth()
    sizes = dict(line.split("\t") for line in comps[0].chrom_sizes.read_text().splitlines())
    for chrom, length in sizes.items():
        for m, mark in enumerate(comps[0].marks):
            expected = _expected_factor(truth, chrom, int(length), m)
            for cid in comps[0].cell_types:
                vals = []
                for c in comps:
                    with pyBigWig.open(str(c.bigwigs[cid][mark])) as bw:
                        vals.append(bw.values(chrom, 0, int(length), numpy=True))
                # Artefacts rescale values; they neither add nor remove data.
                covered = ~np.isnan(vals[0])
                assert covered.any()
                np.testing.assert_array_equal(covered, ~np.isnan(vals[1]))
                np.testing.assert_array_equal(covered, ~np.isnan(vals[2]))
                ratio = vals[1][covered] / vals[0][covered]
                # One factor per locus and mark, whatever the cell type: the truth's.
                np.testing.assert_allclose(ratio, expected[covered], rtol=1e-5)
                # The factor is exp(strength * draw): doubling the strength squares it, so at
                # strength 0 it is 1 and the signal carries no artefact.
                np.testing.assert_allclose(vals[2][covered] / vals[0][covered], ratio**2, rtol=1e-5)


def test_artefacts__absent_at_zero_and_touch_only_the_signal(
    artefact_levels: dict[float, SynthCompendium],
) -> None:
    zero, s, _ = sorted(artefact_levels)
    t0, ts = artefact_levels[zero].truth(), artefact_levels[s].truth()
    assert (t0["signal_artefact"] == 1).all() and (t0["bin_signal_artefact"] == 1).all()
    np.testing.assert_allclose(
        t0["signal_level"] * ts["signal_artefact"][None], ts["signal_level"], rtol=1e-6
    )
    a, b = _digests(artefact_levels[zero].root), _digests(artefact_levels[s].root)
    differ = {k for k in a if a[k] != b[k]}
    assert differ == {"truth.npz"} | {k for k in a if k.startswith("bigwig/")}
    # What the artefact is: log-normal of the given scale, half shared by a locus's marks,
    # blind to activity (it only says which locus this is).
    log_f = np.log(ts["signal_artefact"].astype(float))
    assert abs(log_f.std() / s - 1) < 0.15
    shared = np.corrcoef(log_f.T)[np.triu_indices(log_f.shape[1], 1)]
    assert 0.3 < shared.mean() < 0.7
    assert abs(np.corrcoef(log_f.mean(axis=1), ts["propensity"])[0, 1]) < 0.2


# --------------------------------------------------------------------------- parameters


def test_params__presets_and_overrides() -> None:
    assert PRESETS["paper"].n_genes == 17_951 and PRESETS["paper"].n_cell_types == 56
    assert PRESETS["paper"].chrom_lengths[21] == 51_304_566  # hg19 chr22
    assert len({row[0] for row in CELL_TYPES}) == 56 and "E000" not in dict(
        (r[0], r) for r in CELL_TYPES
    )
    assert [r[0] for r in CELL_TYPES[:5]] == ["E003", "E004", "E037", "E106", "E113"]
    demo = PRESETS["demo"]
    assert demo.artefact_strength > 0  # the demo's signal carries locus artefacts
    assert 40e6 <= sum(demo.chrom_lengths) <= 60e6
    assert sum(-(-n // demo.bin_size) for n in demo.chrom_lengths) > 1000
    p = SynthParams.preset("tiny", seed=3, marks=["H3K4me3"])
    assert p.seed == 3 and p.marks == ("H3K4me3",)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"n_chroms": 23}, "n_chroms must be in 1..22, got 23"),
        ({"n_cell_types": 57}, "n_cell_types must be in 1..56, got 57"),
        ({"marks": ("H3K4me2",)}, "marks must be distinct names from"),
        ({"n_lineages": 0}, "n_lineages must be None or >= 1, got 0"),
        ({"artefact_strength": -0.1}, "artefact_strength must be >= 0, got -0.1"),
        ({"missing_fraction": 1.0}, "missing_fraction must be in [0, 1), got 1.0"),
        ({"missing_fraction": -0.1}, "missing_fraction must be in [0, 1), got -0.1"),
        ({"imputation_cell": -1.0}, "imputation_cell must be >= 0, got -1.0"),
        ({"imputation_noise": -0.5}, "imputation_noise must be >= 0, got -0.5"),
    ],
)
def test_params__rejects_out_of_range(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SynthParams.preset("tiny", **bad)


def test_synthesize__overrides_marks_and_lineages(tmp_path: Path) -> None:
    c = synthesize(tmp_path, "tiny", marks=("H3K4me3", "H3K27ac"), n_lineages=2, n_cell_types=3)
    assert c.cell_types == ("E003", "E004", "E037") and set(c.groups) <= {"L1", "L2"}
    assert c.groups[0] == "L1"
    assert sorted(p.name for p in (tmp_path / "bigwig").iterdir()) == sorted(
        f"{cid}-{m}.bw" for cid in c.cell_types for m in ("H3K4me3", "H3K27ac")
    )
    assert tomllib.loads(c.manifest.read_text())["signal"]["marks"] == ["H3K4me3", "H3K27ac"]


# --------------------------------------------------------------------------- imputation

# sha256 of every file of the "tiny" preset as main wrote it before the imputation files
# came: those files must keep their bytes (the demo's findings rest on them).
_TINY_DIGESTS = {
    ".pitfall-synth": "4d1d70273ed1bba1a0a3adba52a8f4263f856a9444a887958fe35598cf3adb7c",
    "bigwig/E003-H3K27me3.bw": "33ad03c7eea12bbbfb1458b162650fdf338f29b86d09275dbac0581cb2ac879c",
    "bigwig/E003-H3K36me3.bw": "6a360babf27af5855faaf7a94ca0be6c79fde2d146ff94cb81fbc1b30fd82e21",
    "bigwig/E003-H3K4me1.bw": "1ca26673207001c529ca4eeea625064cacc0d901e2a1907de2c6892331a1889d",
    "bigwig/E003-H3K4me3.bw": "63209508baefb7068109b4f6c21b18138abf6d32eb0d86c2be127225a04205f0",
    "bigwig/E003-H3K9me3.bw": "fb72579fc3281b3132ed641558b4c4a3c56e1f5cf0c01004d076004fb51689c8",
    "bigwig/E004-H3K27me3.bw": "f168187adf0bbd0f3c7ee59dae939a97c928653c76248f648bce06012589b74f",
    "bigwig/E004-H3K36me3.bw": "c0f5502888ced82f439920498d02e7260d285c12b0e74c53c2b4c02ab7023a31",
    "bigwig/E004-H3K4me1.bw": "1b38a408941ac9845bbe62ded2c2f22fb4d51d625972c775eafc362b7f8a7ff8",
    "bigwig/E004-H3K4me3.bw": "24bcd3538848f89231cbf005865f22078255dbad7cb0592fc1149b673b0e8e4f",
    "bigwig/E004-H3K9me3.bw": "78dad9ee5aab82a8471c268d7a8cf2a71ff9a68c934e487ce12a537c0269c013",
    "bigwig/E037-H3K27me3.bw": "1e3f166f30cc9c57efaf8f0934adf04471fe8e8a7f98dd75dae9ba340f7dee63",
    "bigwig/E037-H3K36me3.bw": "3b7b65219b75bf92b4e9477bb88a5eb66109560072a97705f5df9f488265f96a",
    "bigwig/E037-H3K4me1.bw": "154fd434ae03ff7df126f68a6c82f492d38b5f08064115e00d712f9b3aa47db8",
    "bigwig/E037-H3K4me3.bw": "640fd532a059183213030916a030758e830b0bc8975289b8b592e2c993374348",
    "bigwig/E037-H3K9me3.bw": "0279a6db5f49a73f302f8653a000c9588f456d75f20f97aa58e441fb8798e610",
    "bigwig/E106-H3K27me3.bw": "e03ce2dcf9cab2bcfdf34c5e999a7978d958b2c60b6cb844aa7eef6d78ce4699",
    "bigwig/E106-H3K36me3.bw": "eaa6ab8bfc3982774561c74129166a7160aebb26a2da288472b121ec9d506ae6",
    "bigwig/E106-H3K4me1.bw": "fd3e35ac91b8aa87aa3c2351a2d7faf150df1bd4a8dc0541958a9fbf498344ab",
    "bigwig/E106-H3K4me3.bw": "e7b71a065f8dbf549de023740c24438572bf8d9954e13ea55c7e717276f457a0",
    "bigwig/E106-H3K9me3.bw": "ae4e6672b40028904dc00730378b262f238311b8350f04a81a613ca9aa6b8c19",
    "bigwig/E113-H3K27me3.bw": "c27f38798466aefedd3ce95000679dc9028217d0eb6ae9809e779108fdb00db5",
    "bigwig/E113-H3K36me3.bw": "af308ebf103acdabed34fcc1f6905f988c442fd24a9fc23f60e9d15f214355e0",
    "bigwig/E113-H3K4me1.bw": "aac54d48c17ce0ea4f2694b6c3eae214a08e61410e827df74659c0af3883dfe0",
    "bigwig/E113-H3K4me3.bw": "51912202b8c02fe0cf3584ad4e2a6516702fd726a8ae4570bebf31ee502811fa",
    "bigwig/E113-H3K9me3.bw": "fe7533edefee209b5c167bc6957a7fdb0da02638a325a2adaf020905c9fd221e",
    "bigwig/E116-H3K27me3.bw": "7c2d9bf71b022b24c094cae327ed96096bfd926e29ca62c35bfc5d029097fb4e",
    "bigwig/E116-H3K36me3.bw": "a25eb30d53c4e66ae77c885ab80e2eda85bdc4363fc83f9dc1712289346dbc97",
    "bigwig/E116-H3K4me1.bw": "46e3ad9f246d79c7a691373ac3de4322e7a8768ce7b365509e44e47a3839a877",
    "bigwig/E116-H3K4me3.bw": "385108739d23334c74f695f40033f14cf5c50d8accfe8372413734c0ff87184e",
    "bigwig/E116-H3K9me3.bw": "2dd30e8745b40f2069d034553d066ccaf8447a18befa2c694abdfef5ca9329d8",
    "chrom.sizes": "a2e90bfed9194b4c1ee3399e6a95076048aafcb1e7d8fbce1677fee5fbccd3c3",
    "domains/E003.bed": "3d298a5d1fcb6ee49bee382eed4cabc6ff4eba275cae2e82ba9f3923fa3a4ca9",
    "domains/E004.bed": "dee408d283600ade6f8316deb1227aca47ccdba340584fd3b158cd771a3c4826",
    "domains/E037.bed": "25b1aa47bc1c2cfe8914b15b432d9c8ee30130b4652e2dba0ff50b3754c8d686",
    "domains/E106.bed": "f215f3dcee308c6682bc49a84174ef39047ce8d327bd663f5bab6a43c02c0956",
    "domains/E113.bed": "9154ac313c78e78642e185c36e4a6ac00938ee9decb53f376824f34ab1ff0a43",
    "domains/E116.bed": "092481e0c741df9684f1994d14d3f9d167491fed61b18bb5e83480cec2e28f1c",
    "genes.gtf.gz": "48fd952b7d2266eac6d14be981b57102f6e07b1ee9f2cf8c00879c4a53485712",
    "genome.fa": "b353a083e840fe67290f24a1889f51d923b01450d10ebcb722cc2f7ede3cb367",
    "manifest.toml": "6f2cf2ee061706a6ef9250485e9cf32cddef7f08a15528182f0876d4932722f9",
    "manifest_tad.toml": "20624f3970f95a4d3aee022224791d8b948c64b2526e252eb3452d7ebabd7a04",
    "rpkm.tsv.gz": "bdef75a0be760df7956a8b337d1760d38388abafb3a84a8946977d15aa3d774e",
    "truth.npz": "057a0c5c38e0e07e76330f47a4c753648c2af929354b4a9ce7064b06a97481fe",
}
_IMPUTATION_FILES = {"manifest_imputation.toml", "truth_imputation.npz"}


def test_synthesize__existing_files_of_tiny_keep_their_bytes(comp: SynthCompendium) -> None:
    digests = _digests(comp.root)
    assert {k: digests.get(k) for k in _TINY_DIGESTS} == _TINY_DIGESTS
    new = set(digests) - set(_TINY_DIGESTS)
    imputation_bigwigs = {
        f"bigwig_imputation/{cid}-{m}.bw" for cid in comp.cell_types for m in comp.marks
    }
    assert new == _IMPUTATION_FILES | imputation_bigwigs


def _max_missing(n_c: int, n_m: int) -> int:
    """Most experiments the rules let go missing, counted by hand.

    E003's row stays whole; each of the other ``n_c - 1`` rows keeps 2 marks, and each mark
    needs one observer besides E003: at least ``max(2 (n_c - 1), n_m)`` observed off E003.
    """
    if n_c < 2 or n_m < 2:
        return 0
    return (n_c - 1) * n_m - max(2 * (n_c - 1), n_m)


def _assert_rules(observed: np.ndarray) -> None:
    assert observed.dtype == bool
    assert observed[0].all()  # E003, the target, keeps every mark
    if observed.shape[1] >= 2 and observed.shape[0] >= 2:
        assert (observed.sum(axis=0) >= 2).all()
        assert (observed.sum(axis=1) >= 2).all()


@pytest.mark.parametrize("preset", ["tiny", "demo", "paper"])
def test_observed_matrix__rules_and_fraction_for_several_seeds(preset: str) -> None:
    seen = set()
    for seed in range(6):
        p = SynthParams.preset(preset, seed=seed)
        obs = observed_matrix(p, p.n_cell_types)
        assert obs.shape == (p.n_cell_types, len(p.marks))
        _assert_rules(obs)
        assert (~obs).sum() == round(p.missing_fraction * obs.size)
        assert abs((~obs).mean() - p.missing_fraction) <= 0.5 / obs.size + 1e-12
        np.testing.assert_array_equal(obs, observed_matrix(p, p.n_cell_types))
        seen.add(obs.tobytes())
    assert len(seen) == 6  # each seed its own draw


@settings(max_examples=60, deadline=None)
@given(
    n_c=st.integers(1, 20),
    n_m=st.integers(1, len(MARK_EFFECTS)),
    fraction=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**16),
)
def test_observed_matrix__rules_hold_and_missing_as_many_as_asked_or_allowed(
    n_c: int, n_m: int, fraction: float, seed: int
) -> None:
    p = SynthParams.preset(
        "tiny", seed=seed, marks=tuple(MARK_EFFECTS)[:n_m], missing_fraction=fraction
    )
    obs = observed_matrix(p, n_c)
    _assert_rules(obs)
    assert (~obs).sum() == min(round(fraction * n_c * n_m), _max_missing(n_c, n_m))


def test_manifest_imputation__lists_observed_experiments_of_their_own_bigwigs(
    comp: SynthCompendium,
) -> None:
    m = tomllib.loads(comp.manifest_imputation.read_text())
    full = tomllib.loads(comp.manifest.read_text())
    # The expression task's loci, target and cell types; only the signal differs.
    assert {k: m[k] for k in ("assembly", "loci", "sequence", "signal", "target")} == {
        k: full[k] for k in ("assembly", "loci", "sequence", "signal", "target")
    }
    assert list(m["cell_types"]) == list(comp.cell_types)
    imp = comp.truth_imputation()
    assert list(imp["cell_types"]) == list(comp.cell_types)
    assert list(imp["marks"]) == list(comp.marks)
    np.testing.assert_array_equal(imp["observed"], comp.observed)
    _assert_rules(imp["observed"])
    on_disk = sorted(p.name for p in (comp.root / "bigwig_imputation").iterdir())
    listed = []
    for c, (cid, spec) in enumerate(m["cell_types"].items()):
        assert spec["name"] == full["cell_types"][cid]["name"]
        want = [mk for k, mk in enumerate(comp.marks) if imp["observed"][c, k]]
        assert list(spec["signal"]) == want
        assert spec["signal"] == {mk: f"bigwig_imputation/{cid}-{mk}.bw" for mk in want}
        listed += [Path(p).name for p in spec["signal"].values()]
    assert set(listed) <= set(on_disk) and len(listed) == comp.observed.sum()
    # Missing experiments keep their files, the held-back truth, out of the manifest.
    assert on_disk == sorted(f"{cid}-{mk}.bw" for cid in comp.cell_types for mk in comp.marks)
    assert (~comp.observed).sum() == round(comp.params.missing_fraction * comp.observed.size)


def test_manifest_imputation__bigwigs_carry_the_imputation_levels(
    comp: SynthCompendium, truth: dict[str, np.ndarray]
) -> None:
    imp = comp.truth_imputation()
    log_level = np.log(imp["signal_level"].astype(float))
    c, k = 0, list(comp.marks).index("H3K27me3")
    sig = _window_arcsinh_means(comp.bigwigs_imputation["E003"]["H3K27me3"], truth)
    assert np.corrcoef(sig, log_level[c, :, k])[0, 1] > 0.8
    # Not the expression task's track of the same experiment.
    old = _window_arcsinh_means(comp.bigwigs["E003"]["H3K27me3"], truth)
    assert np.corrcoef(sig, old)[0, 1] < 0.8


def _imputation_truth(preset: str, seed: int) -> tuple[SynthParams, dict[str, np.ndarray]]:
    p = SynthParams.preset(preset, seed=seed)
    _, _, groups = cell_table(p)
    truth = simulate(p, groups, len(layout_bins(p)["start"]))
    return p, simulate_imputation(p, truth)


def _imputation_mses(log_level: np.ndarray) -> np.ndarray:
    """Per mark: MSE on held-out cell types of (regression on the cell type's other marks,
    per-locus mean over training cell types, global mean over training cell types).

    Every third cell type, E003 first, is held out; the regression is numpy's lstsq with an
    intercept, fitted on every training cell type and locus.
    """
    n_c, n_g, n_m = log_level.shape
    test = np.arange(n_c) % 3 == 0
    train, held = log_level[~test], log_level[test]
    out = []
    for m in range(n_m):
        others = [k for k in range(n_m) if k != m]

        def design(x: np.ndarray, others: list[int] = others) -> np.ndarray:
            flat = x[:, :, others].reshape(-1, len(others))
            return np.column_stack([flat, np.ones(len(flat))])

        w = np.linalg.lstsq(design(train), train[:, :, m].ravel(), rcond=None)[0]
        target = held[:, :, m]
        regression = np.mean((design(held) @ w - target.ravel()) ** 2)
        per_locus = np.mean((train[:, :, m].mean(axis=0)[None, :] - target) ** 2)
        global_mean = np.mean((train[:, :, m].mean() - target) ** 2)
        out.append((regression, per_locus, global_mean))
    return np.array(out)


@pytest.mark.parametrize(("preset", "seed"), [("demo", 0), ("demo", 1), ("demo", 2), ("paper", 0)])
def test_imputation_truth__other_marks_beat_the_average_which_beats_the_global_mean(
    preset: str, seed: int
) -> None:
    p, imp = _imputation_truth(preset, seed)
    mse = _imputation_mses(np.log(imp["signal_level"].astype(np.float64)))
    regression, per_locus, global_mean = mse.T
    shown = dict(zip(p.marks, mse.round(3).tolist(), strict=True))
    # (a) the cell type's other marks carry what is specific to it, which the Average misses
    assert (regression < 0.8 * per_locus).all(), shown
    # (b) the locus-constant component makes remembering loci pay over knowing nothing
    assert (per_locus < 0.8 * global_mean).all(), shown


def test_imputation_truth__components_off_remove_what_they_carry() -> None:
    p = SynthParams.preset("tiny")
    _, _, groups = cell_table(p)
    truth = simulate(p, groups, len(layout_bins(p)["start"]))
    no_cell = simulate_imputation(dataclasses.replace(p, imputation_cell=0.0), truth)
    no_locus = simulate_imputation(dataclasses.replace(p, imputation_locus=0.0), truth)
    # Without the cell-type component other marks know no more than the locus average.
    reg, avg, _ = _imputation_mses(np.log(no_cell["signal_level"].astype(np.float64))).T
    assert (reg > avg).all()
    # Without the locus component the per-locus mean is no better than the global mean.
    _, avg, glob = _imputation_mses(np.log(no_locus["signal_level"].astype(np.float64))).T
    assert (avg > 0.95 * glob).all()
    # The components are the ones the truth reports, at the given scales.
    full = simulate_imputation(p, truth)
    log_level = np.log(full["signal_level"].astype(np.float64))
    parts = (
        p.imputation_locus * full["locus_component"][None]
        + p.imputation_cell * full["loading"][None, None] * full["cell_component"][:, :, None]
    )
    resid = log_level - parts
    assert abs((resid - resid.mean()).std() - p.imputation_noise) < 0.02
    dev = truth["activity_level"].astype(float) - truth["propensity"][None].astype(float)
    assert np.corrcoef(full["cell_component"].ravel(), dev.ravel())[0, 1] > 0.999


def test_cli_synth__tiny_writes_and_mentions_the_imputation_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["synth", str(tmp_path / "c"), "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c" / "manifest_imputation.toml") in out
    n = 6 * len(CORE_MARKS)
    assert f"{n - round(0.25 * n)} of {n} experiments observed" in out
    assert (tmp_path / "c" / "manifest_imputation.toml").is_file()
