"""Tests of pitfall.synth: the written files parse with independent readers and match the truth."""

from __future__ import annotations

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

from pitfall.synth import (
    BIN_MOTIF,
    CELL_TYPES,
    CORE_MARKS,
    GENE_MOTIF,
    PRESETS,
    SynthCompendium,
    SynthParams,
    synthesize,
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
