"""The generative model of a synthetic compendium: gene layout, bins, and the latent truth.

All on a latent scale where 0 separates active from inactive:

- every gene ``g`` has a propensity ``mu[g]`` shared by all cell types; every 40 kb bin
  ``j`` has a boundary propensity ``beta[j]``;
- every cell type belongs to a lineage; each lineage shifts a small random fraction of the
  loci up or down (``lineage_fraction``, ``lineage_shift``);
- every cell type adds its own noise (``cell_noise``), so the latent activity is
  ``z[c, g] = mu[g] + shift[lineage(c), g] + noise[c, g]`` and the label is ``z > 0``;
- marks follow each cell type's own ``z``: activating marks are high where the locus is
  active, repressive marks where it is inactive, with log-normal noise (``mark_noise``);
- every locus scales each mark's signal by a factor of its own that is the same in every
  cell type (``artefact_strength``), as mappability, GC content and CpG islands do in real
  ChIP-seq: it carries no activity, only the locus's identity, which a model seeing a locus
  in many training cell types can memorise from the signal as from the sequence.

The imputation manifest's signal (:func:`simulate_imputation`) is written apart, in log
levels that add three components: a cell-type-specific one (the cell type's own deviation of
activity from the propensity, shared by its marks with mark-specific loadings), a
locus-constant one per mark (the same in every cell type), and noise. Which experiments it
lists is :func:`observed_matrix`.

The motifs of the sequence (:mod:`pitfall.synth.sequence`) follow the propensities, so the
sequence reveals the *average* activity of a locus over cell types, never what is specific
to one cell type.

Coordinates: a gene's TSS (0-based) is ``start`` of a plus-strand gene and ``end - 1`` of a
minus-strand gene (BED-style ``start, end``); its upstream window of ``window`` bases is
``[tss - window, tss)`` on the plus strand and ``[tss + 1, tss + 1 + window)`` on the minus
strand, clipped to the chromosome.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from pitfall.synth.params import CELL_TYPES, MARK_EFFECTS, SynthParams

__all__ = [
    "STREAM_ARTEFACT",
    "STREAM_LAYOUT",
    "STREAM_MODEL",
    "STREAM_SEQUENCE",
    "STREAM_SIGNAL",
    "STREAM_IMPUTATION",
    "STREAM_IMPUTATION_SIGNAL",
    "STREAM_MISSING",
    "cell_table",
    "gene_ids",
    "layout_bins",
    "layout_genes",
    "observed_matrix",
    "simulate",
    "simulate_imputation",
    "stream",
]

#: Keys of the independent random streams, one per stage, so that changing one stage (e.g.
#: the number of marks) leaves every other stage's draws unchanged.
STREAM_LAYOUT, STREAM_MODEL, STREAM_SEQUENCE, STREAM_SIGNAL, STREAM_ARTEFACT = 1, 2, 3, 4, 6
STREAM_IMPUTATION, STREAM_MISSING, STREAM_IMPUTATION_SIGNAL = 7, 8, 9

_SHARPNESS = 1.0  # slope of the chromatin state's logistic response to the latent activity
# Share of an artefact's log-scale variance common to all marks of a locus (mappability hits
# every assay alike); the rest is mark-specific (GC and CpG biases differ between antibodies).
_ARTEFACT_SHARED = 0.5
# Median level of the imputation signal: high enough that the arcsinh a cube takes of it is
# close to a log over most of its range.
_IMPUTATION_BASE = 4.0


def stream(params: SynthParams, *key: int) -> np.random.Generator:
    """The random stream of ``params.seed`` keyed by a ``STREAM_*`` constant and sub-keys."""
    return np.random.default_rng([params.seed, *key])


def cell_table(params: SynthParams) -> tuple[list[str], list[str], list[str]]:
    """Ids, display names and lineages (groups) of the first ``n_cell_types`` cell types."""
    rows = CELL_TYPES[: params.n_cell_types]
    ids = [r[0] for r in rows]
    names = [r[1] for r in rows]
    groups = [r[2] for r in rows]
    if params.n_lineages is not None:
        k = params.n_lineages
        draw = stream(params, STREAM_MODEL, 99).integers(0, k, size=len(ids))
        draw[0] = 0
        groups = [f"L{i + 1}" for i in draw]
    return ids, names, groups


def layout_genes(params: SynthParams) -> dict[str, np.ndarray]:
    """Place genes so that no gene body or window overlaps another gene's window."""
    rng = stream(params, STREAM_LAYOUT)
    lengths = np.array(params.chrom_lengths, dtype=np.int64)
    w = params.window
    # Largest-remainder apportionment: deterministic and sums to n_genes exactly.
    share = params.n_genes * lengths / lengths.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: params.n_genes - counts.sum()]] += 1
    margin = 2 * w
    chrom_idx, fstart, body, plus = [], [], [], []
    for ci, (n, length) in enumerate(zip(counts, lengths, strict=True)):
        n = int(n)
        if n == 0:
            continue
        usable = int(length) - 2 * margin
        b = np.clip(rng.lognormal(np.log(params.gene_body_median), 0.8, n), 500, 200_000)
        # Leave at least 40% of the chromosome intergenic: shrink bodies when they crowd.
        budget = 0.6 * usable - n * w
        if budget < n * 300:
            raise ValueError(f"{n} genes of window {w} do not fit on chr{ci + 1}")
        if b.sum() > budget:
            b = np.maximum(b * budget / b.sum(), 300)
        b = b.astype(np.int64)
        foot = b + w
        free = usable - int(foot.sum())
        cuts = np.sort(rng.integers(0, free + 1, size=n))
        gaps = np.diff(np.concatenate([[0], cuts]))
        starts = margin + np.cumsum(gaps) + np.concatenate([[0], np.cumsum(foot)[:-1]])
        chrom_idx.append(np.full(n, ci))
        fstart.append(starts)
        body.append(b)
        plus.append(rng.random(n) < 0.5)
    ci_all = np.concatenate(chrom_idx)
    fs = np.concatenate(fstart)
    bl = np.concatenate(body)
    pl = np.concatenate(plus)
    # Edge cases for featurizers: the first gene of chr1 (plus strand) and the last gene of
    # the last chromosome (minus strand) get windows that run past the chromosome's ends.
    # Moving a footprint outward cannot make it overlap its neighbours.
    pl[0] = True
    fs[0] = -(w - min(700, w // 2))
    last = len(fs) - 1
    pl[last] = False
    fs[last] = int(lengths[ci_all[last]]) + min(800, w // 2) - w - int(bl[last])
    # Footprint: plus = [window][body], minus = [body][window].
    g_start = np.where(pl, fs + w, fs)
    g_end = g_start + bl
    tss = np.where(pl, g_start, g_end - 1)
    ws = np.where(pl, tss - w, tss + 1)
    we = ws + w
    clen = lengths[ci_all]
    return {
        "chrom_index": ci_all,
        "start": g_start,
        "end": g_end,
        "plus": pl,
        "tss": tss,
        "window_start": np.clip(ws, 0, clen),
        "window_end": np.clip(we, 0, clen),
    }


def layout_bins(params: SynthParams) -> dict[str, np.ndarray]:
    """The TAD task's bins of every chromosome: ``chrom_index``, ``start``, ``end`` (int64)."""
    ci, st, en = [], [], []
    for i, length in enumerate(params.chrom_lengths):
        s = np.arange(0, length, params.bin_size, dtype=np.int64)
        ci.append(np.full(len(s), i))
        st.append(s)
        en.append(np.minimum(s + params.bin_size, length))
    return {
        "chrom_index": np.concatenate(ci),
        "start": np.concatenate(st),
        "end": np.concatenate(en),
    }


def _latent(
    rng: np.random.Generator, base: np.ndarray, lineage: np.ndarray, params: SynthParams
) -> np.ndarray:
    """``base + lineage shift + cell noise`` for every cell type (rows) and locus (columns)."""
    n_lin = int(lineage.max()) + 1
    shifted = rng.random((n_lin, base.size)) < params.lineage_fraction
    shift = np.where(shifted, rng.normal(0.0, params.lineage_shift, (n_lin, base.size)), 0.0)
    noise = rng.normal(0.0, params.cell_noise, (lineage.size, base.size))
    return base[None, :] + shift[lineage] + noise


def _artefacts(params: SynthParams, n_loci: int, kind: int) -> np.ndarray:
    """Multiplicative artefact factors (loci x marks), the same in every cell type.

    ``kind`` keeps gene windows (0) and bins (1) apart. Each mark draws from a stream keyed
    by its place in ``MARK_EFFECTS``, so a mark's factors do not depend on which other marks
    are synthesized; the draws do not depend on the strength either, so compendia that
    differ only in ``artefact_strength`` differ only by these factors.
    """
    common = stream(params, STREAM_ARTEFACT, kind).standard_normal(n_loci)
    names = list(MARK_EFFECTS)
    own = np.stack(
        [
            stream(params, STREAM_ARTEFACT, kind, 1 + names.index(m)).standard_normal(n_loci)
            for m in params.marks
        ],
        axis=1,
    )
    log_f = params.artefact_strength * (
        np.sqrt(_ARTEFACT_SHARED) * common[:, None] + np.sqrt(1.0 - _ARTEFACT_SHARED) * own
    )
    return np.exp(log_f)  # exactly 1 at strength 0


def simulate(params: SynthParams, groups: list[str], n_bins: int) -> dict[str, np.ndarray]:
    """Draw the latent truth: propensities, activities, boundaries, signal levels, RPKM.

    Parameters
    ----------
    params : SynthParams
        The compendium's parameters.
    groups : list of str
        Lineage of each cell type, shape (C,).
    n_bins : int
        Number of bins, ``B``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``lineage_index`` (C,), ``propensity`` (G,), ``activity_level`` and ``activity``
        (C, G), ``rpkm`` (C, G), ``signal_level`` (C, G, M), ``boundary_propensity`` (B,),
        ``boundary_level`` (C, B), ``bin_signal_level`` (C, B, M), ``bin_signal_plain``
        (C, B, M, the bin levels without their artefact factor, which the imputation
        signal's background takes), ``signal_artefact`` (G, M) and ``bin_signal_artefact``
        (B, M).
    """
    rng = stream(params, STREAM_MODEL)
    _, lineage = np.unique(np.array(groups), return_inverse=True)
    n_c, n_g, n_m = len(groups), params.n_genes, len(params.marks)
    mu = rng.normal(params.propensity_mean, params.propensity_scale, n_g)
    z = _latent(rng, mu, lineage, params)
    beta = rng.normal(params.boundary_mean, params.boundary_scale, n_bins)
    y = _latent(rng, beta, lineage, params)
    # Sequencing depth differs per experiment: a per (cell type, mark) scale factor.
    depth = np.exp(rng.normal(0.0, 0.2, (n_c, n_m)))
    sign = np.array([MARK_EFFECTS[m][0] for m in params.marks])
    s_gene = np.array([MARK_EFFECTS[m][1] for m in params.marks])
    s_bin = np.array([MARK_EFFECTS[m][2] for m in params.marks])

    def levels(
        lat: np.ndarray,
        strength: np.ndarray,
        bg: float,
        top: float,
        discord: float,
        artefact: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        chromatin = lat + rng.normal(0.0, discord, lat.shape)
        act = expit(_SHARPNESS * chromatin)[:, :, None]
        x = np.where(sign > 0, act, 1.0 - act)
        log_level = np.log(bg) + strength * np.log(top / bg) * x
        log_level = log_level + rng.normal(0.0, params.mark_noise, log_level.shape)
        plain = np.exp(log_level) * depth[:, None, :]
        return (plain * artefact[None, :, :]).astype(np.float32), plain.astype(np.float32)

    gene_artefact = _artefacts(params, n_g, 0)
    bin_artefact = _artefacts(params, n_bins, 1)
    gene_level, _ = levels(z, s_gene, 0.3, 30.0, params.chromatin_noise, gene_artefact)
    # Discordance between chromatin and activity is a promoter notion (poised genes, RNA
    # turnover); a boundary's marks follow its state up to mark noise only.
    bin_level, bin_plain = levels(y, s_bin, 0.2, 20.0, 0.0, bin_artefact)
    # RPKM > 0.5 exactly when z > 0; Roadmap writes three decimals, so a barely active gene
    # that would print as 0.500 is printed as 0.501 to keep the label rule exact.
    rpkm = np.round(0.5 * np.exp(1.3 * z), 3)
    rpkm = np.where(z > 0, np.maximum(rpkm, 0.501), np.minimum(rpkm, 0.5))
    return {
        "lineage_index": lineage,
        "propensity": mu.astype(np.float32),
        "activity_level": z.astype(np.float32),
        "activity": (z > 0).astype(np.uint8),
        "rpkm": rpkm,
        "signal_level": gene_level,
        "boundary_propensity": beta.astype(np.float32),
        "boundary_level": y.astype(np.float32),
        "bin_signal_level": bin_level,
        "bin_signal_plain": bin_plain,
        "signal_artefact": gene_artefact.astype(np.float32),
        "bin_signal_artefact": bin_artefact.astype(np.float32),
    }


def observed_matrix(params: SynthParams, n_cell_types: int) -> np.ndarray:
    """Which (cell type, mark) experiments the imputation manifest lists.

    The first cell type (E003, the tasks' target) keeps every mark. Among the others, a
    skeleton that keeps the rules is drawn first: a random cycle of the marks dealt two at a
    time to each cell type, then every mark the deal missed given to a random cell type; so
    every mark is observed in E003 and at least one other cell type, and every cell type
    keeps at least 2 marks. Then ``round(missing_fraction * C * M)`` experiments (or every
    one outside E003 and the skeleton, when fewer) chosen at random off the skeleton are
    missing. With a single mark or a single cell type nothing is missing.

    Parameters
    ----------
    params : SynthParams
        The compendium's parameters (``seed``, ``marks``, ``missing_fraction``).
    n_cell_types : int
        ``C``, cell types in the order of :func:`cell_table`.

    Returns
    -------
    numpy.ndarray
        Shape (C, M), bool: True where the experiment is observed.
    """
    n_m = len(params.marks)
    observed = np.ones((n_cell_types, n_m), dtype=bool)
    n_others = n_cell_types - 1
    if n_others < 1 or n_m < 2:
        return observed
    rng = stream(params, STREAM_MISSING)
    skeleton = np.zeros((n_others, n_m), dtype=bool)
    # Consecutive entries of a cycle of distinct marks differ, so each pair is two marks.
    deal = np.resize(rng.permutation(n_m), 2 * n_others).reshape(n_others, 2)
    skeleton[np.arange(n_others)[:, None], deal] = True
    for m in np.flatnonzero(~skeleton.any(axis=0)):
        skeleton[rng.integers(n_others), m] = True
    free = np.flatnonzero(~skeleton.ravel())
    n_missing = min(round(params.missing_fraction * n_cell_types * n_m), free.size)
    drop = rng.permutation(free)[:n_missing]
    rest = np.ones(n_others * n_m, dtype=bool)
    rest[drop] = False
    observed[1:] = rest.reshape(n_others, n_m)
    return observed


def simulate_imputation(params: SynthParams, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The imputation manifest's signal levels at gene upstream windows.

    ``log level[c, g, m] = log(base) + imputation_locus * u[g, m] + imputation_cell *
    loading[m] * a[c, g] + imputation_noise * e[c, g, m]``, where ``a`` is the cell type's
    deviation of latent activity from the propensity (``activity_level - propensity``, the
    lineage shift and cell noise), divided by its standard deviation over every cell type
    and gene; ``u = sqrt(1/2) * sign[m] * standardised propensity + sqrt(1/2) * v[g, m]``
    with ``v`` standard normal, the same in every cell type; ``e`` standard normal.
    Draws come from their own stream, so this signal leaves every other file unchanged.

    Parameters
    ----------
    params : SynthParams
        The compendium's parameters.
    truth : dict of str to numpy.ndarray
        :func:`simulate`'s output; ``propensity`` (G,) and ``activity_level`` (C, G) are
        read.

    Returns
    -------
    dict of str to numpy.ndarray
        ``signal_level`` (C, G, M) float32, the level the window's runs scatter around;
        ``cell_component`` ``a`` (C, G); ``locus_component`` ``u`` (G, M); ``loading`` (M,).
    """
    mu = truth["propensity"].astype(np.float64)
    dev = truth["activity_level"].astype(np.float64) - mu[None, :]
    a = dev / max(float(dev.std()), 1e-12)
    mu_std = (mu - mu.mean()) / max(float(mu.std()), 1e-12)
    sign = np.array([MARK_EFFECTS[m][0] for m in params.marks], dtype=np.float64)
    loading = sign * (0.5 + 0.5 * np.array([MARK_EFFECTS[m][1] for m in params.marks]))
    names = list(MARK_EFFECTS)
    # Keyed by each mark's place in MARK_EFFECTS, as the artefacts, so a mark's draws do not
    # depend on which other marks are synthesized.
    v = np.stack(
        [
            stream(params, STREAM_IMPUTATION, 1 + names.index(m)).standard_normal(mu.size)
            for m in params.marks
        ],
        axis=1,
    )
    u = np.sqrt(0.5) * sign[None, :] * mu_std[:, None] + np.sqrt(0.5) * v
    noise = stream(params, STREAM_IMPUTATION, 0).standard_normal((*a.shape, sign.size))
    log_level = (
        np.log(_IMPUTATION_BASE)
        + params.imputation_locus * u[None, :, :]
        + params.imputation_cell * loading[None, None, :] * a[:, :, None]
        + params.imputation_noise * noise
    )
    return {
        "signal_level": np.exp(log_level).astype(np.float32),
        "cell_component": a.astype(np.float32),
        "locus_component": u.astype(np.float32),
        "loading": loading.astype(np.float32),
    }


def gene_ids(params: SynthParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene numbers, ids without version and ids with version, each of shape (G,).

    Ids are not in genomic order (as in GENCODE), so the RPKM table, sorted by id, lists
    genes in a different order from the GTF.
    """
    rng = stream(params, STREAM_LAYOUT, 1)
    number = rng.permutation(params.n_genes) + 1
    version = rng.integers(1, 13, params.n_genes)
    base_id = np.array([f"SYNG{n:08d}" for n in number])
    gene_id = np.array([f"{b}.{v}" for b, v in zip(base_id, version, strict=True)])
    return number, base_id, gene_id
