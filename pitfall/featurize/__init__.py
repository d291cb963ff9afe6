"""Featurize real files into a cube: workers read inputs and write their own chunks.

``build`` writes a new cube from a manifest; ``append`` adds cell types to an existing one;
``append_experiments`` adds marks (experiments) to a cell type already in it.
Both check every input before computing anything (:mod:`~pitfall.featurize.plan`), then
run a Dask task graph whose tasks each take one block of loci (whole chunks), read the
inputs for it (local paths or URLs) and write the block straight into the cube's Icechunk
session (:mod:`~pitfall.featurize.jobs`; :mod:`pitfall._transaction`: the forked session
travels to the workers, their changes come back and are merged). The driver
(:mod:`~pitfall.featurize.writer`) plans, merges and commits whole cell types (one per
commit, or several small ones together), in the requested order; it never holds a cell
type's arrays, the sequence or a task's result, and the tasks in flight (and blocks computed
ahead) are bounded, so memory depends on the block size, not on the number of loci.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pitfall import _repository as repository
from pitfall import loci as loci_mod
from pitfall.cluster import dask_client
from pitfall.featurize.plan import (
    BuildError,
    check_inputs,
    check_not_empty,
    load,
    plan_loci,
    resolve_cell_types,
)
from pitfall.featurize.writer import Writer, cube_schema, jobs_for
from pitfall.manifest import Manifest
from pitfall.schema import CubeError, decode_root_attrs
from pitfall.storage import Location, parse_location

__all__ = ["BuildError", "BuildSummary", "append", "append_experiments", "build"]

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    """What a build or append wrote."""

    store: str
    cell_types: list[str]
    n_loci: int
    loci_per_chrom: dict[str, int]
    marks: list[str]
    sequence_length: int | None
    snapshots: list[str]
    seconds: float
    gene_matching: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)
    retries: int = 0
    resumed: list[str] = field(default_factory=list)
    experiments: bool = False  # an experiment append: ``marks`` added to ``cell_types[0]``

    def __str__(self) -> str:
        if self.experiments:
            lines = [
                f"added {len(self.marks)} experiments of {self.cell_types[0]} to {self.store} "
                f"in {self.seconds:.1f} s (one commit)",
                f"  marks: {', '.join(self.marks)}",
                f"  loci: {self.n_loci:,} on {len(self.loci_per_chrom)} chromosomes",
            ]
            if self.retries:
                lines.append(
                    f"  redone {self.retries} time(s) after another writer committed first"
                )
            return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])
        lines = [
            f"wrote {len(self.cell_types)} cell types to {self.store} in {self.seconds:.1f} s",
            f"  cell types: {', '.join(self.cell_types)}",
            f"  loci: {self.n_loci:,} on {len(self.loci_per_chrom)} chromosomes",
            f"  marks: {', '.join(self.marks) or 'none'}",
            f"  sequence: {f'{self.sequence_length} bp per locus' if self.sequence_length else 'none'}",
        ]
        if self.gene_matching:
            g = self.gene_matching
            lines.append(
                "  genes: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in g.items())
            )
        if self.resumed:
            lines.append(
                f"  finished an unfinished build: {', '.join(self.resumed)} were already there"
            )
        if self.retries:
            lines.append(f"  {self.retries} commit(s) redone after another writer committed first")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The summary as a table, for Jupyter."""
        import html

        rows = [
            ("cube", self.store),
            ("cell types", ", ".join(self.cell_types)),
            ("loci", f"{self.n_loci:,} on {len(self.loci_per_chrom)} chromosomes"),
            ("marks", ", ".join(self.marks) or "none"),
            (
                "sequence",
                f"{self.sequence_length} bp per locus" if self.sequence_length else "none",
            ),
            ("commits", f"{len(self.snapshots)} ({self.retries} redone after a conflict)"),
            ("time", f"{self.seconds:.1f} s"),
            *(("warning", w) for w in self.warnings),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>pitfall build summary</caption>{body}</table>"


#: What a build's worker processes import as they start (:func:`pitfall.cluster.dask_client`).
WORKER_MODULES = ("pitfall.featurize.jobs",)


def _featurize(
    m: Manifest,
    loci: loci_mod.LocusSet,
    cell_types: list[str],
    loc: Location,
    *,
    create: bool,
    planned: list[str],
    repo: Any,
    workers: int | None,
    scheduler: str | None,
    client: Any,
    progress: bool,
    writer_id: str = "",
    per_commit: int | None = None,
) -> Writer:
    jobs = jobs_for(m, loci, cell_types)
    t0 = time.perf_counter()
    with dask_client(
        workers=workers, scheduler=scheduler, client=client, preload=WORKER_MODULES
    ) as c:
        log.info("workers ready in %.1f s (%s)", time.perf_counter() - t0, _describe(c))
        w = Writer(
            c,
            loc,
            m,
            loci,
            cell_types,
            jobs,
            cube_schema(m, loci),
            create=create,
            planned=planned,
            repo=repo,
            progress=progress,
            writer_id=writer_id,
            per_commit=per_commit,
        )
        # The cube's storage failing (a full disk, a server gone) is said here, naming the cube.
        with repository.native_errors(loc):
            w.run()
        t1 = time.perf_counter()
    log.info("workers closed in %.1f s", time.perf_counter() - t1)
    return w


def _describe(client: Any) -> str:
    workers = client.scheduler_info().get("workers", {})
    threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


#: Below this many (locus x cell type x input) values a build runs in this process: starting
#: worker processes and importing the stack in each would cost more than the work.
IN_PROCESS_BELOW = 2_000_000


def _workers(
    workers: int | None, processes: bool, m: Manifest, n_loci: int, n_cell_types: int
) -> int | None:
    if not processes:
        return 0
    if workers is None and n_loci * n_cell_types * (len(m.marks) + 1) < IN_PROCESS_BELOW:
        return 0
    if workers is None and _labels_only(m):
        # Placing peaks or domains is a few vectorised passes per block: worker processes
        # would spend longer starting and shipping each block's session than computing it.
        return 0
    return workers


def _labels_only(m: Manifest) -> bool:
    """Whether a manifest's cube holds labels alone (no signal, no sequence)."""
    return not m.marks and m.fasta is None


def _check_per_commit(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise BuildError(f"cell types per commit must be a whole number of at least 1, not {n!r}")


#: Featurization parameters an append must share with the cube (dotted paths into
#: :meth:`~pitfall.manifest.Manifest.featurization`); file paths may differ, values not.
SHARED_PARAMETERS = (
    "loci.kind",
    "loci.upstream",
    "loci.downstream",
    "loci.bin_size",
    "loci.stride",
    "chroms",
    "sequence_length",
    "feature_window",
    "marks",
    "target.kind",
    "target.threshold",
    "target.rule",
    "target.min_overlap",
    "signal_transform",
)


#: Peak-label parameters a cube's featurization may lack (a peaks cube that does not state
#: them was labelled with these values).
IMPLICIT_PARAMETERS = {"target.rule": "summit", "target.min_overlap": 1}


def _param(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None  # type: ignore[assignment]
    return tree


def _check_same_featurization(
    cube_params: dict[str, Any], new: dict[str, Any], m: Manifest, loc: Location
) -> None:
    """Refuse an append whose manifest would featurize differently from the cube's."""
    for name in SHARED_PARAMETERS:
        a, b = _param(cube_params, name), _param(new, name)
        if a is None and b is not None and name in IMPLICIT_PARAMETERS:
            a = IMPLICIT_PARAMETERS[name]
        if cube_params and a != b:
            raise CubeError(
                f"{m.path} featurizes differently from the cube at {loc}: {name} is {b!r} "
                f"there but {a!r} in the cube; cell types of one cube must share it (build a "
                "new cube for other parameters)"
            )


def _same_featurization(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # The manifest's own path may differ (a copy, a moved folder); what it says may not.
    return {k: v for k, v in a.items() if k != "manifest"} == {
        k: v for k, v in b.items() if k != "manifest"
    }


def _resume_plan(
    loc: Location, m: Manifest, loci: loci_mod.LocusSet, cts: list[str], storage_options: Any
) -> tuple[Any, list[str], list[str]] | None:
    """For a cube left by an unfinished build of this manifest: (repo, planned, still to do).

    None when there is nothing to resume: a finished cube, or no repository at all (files
    pitfall did not write, whose refusal is the error to report).
    """
    try:
        repo = repository.open_repository(loc, **storage_options)
    except FileNotFoundError:
        return None
    attrs = decode_root_attrs(repository.root_attrs(repo))
    build_state = attrs.get("build") or {}
    if not build_state or build_state.get("complete", True):
        return None
    if not _same_featurization(attrs.get("featurization", {}), m.featurization()):
        raise BuildError(
            f"{loc} holds an unfinished build of another manifest; build to a new --store, "
            "or finish that build with its own manifest"
        )
    block = int(attrs.get("locus_fingerprint_block") or 0)
    if loci_mod.fingerprint(loci, block) != attrs.get("locus_fingerprint"):
        raise BuildError(f"the loci of {m.path} changed since the unfinished build at {loc} began")
    planned = list(build_state["cell_types"])
    if set(cts) != set(planned):
        raise BuildError(
            f"{loc} holds an unfinished build of cell types {planned}; rerun it with the same "
            "cell types to finish it"
        )
    present = set(repository.cell_types_of(repo))
    return repo, planned, [ct for ct in planned if ct not in present]


def _check_same_loci(
    m: Manifest, loci: loci_mod.LocusSet, attrs: dict[str, Any], loc: Location
) -> int:
    """Refuse a manifest whose loci are not the cube's (an append adds to the same loci).

    Returns the loci per block of the cube's fingerprint (a multiple of its chunk).
    """
    block = int(attrs.get("locus_fingerprint_block") or 0)
    if not block or loci_mod.fingerprint(loci, block) != attrs.get("locus_fingerprint"):
        old = ""
        if int(attrs.get("pitfall_schema_version") or 0) < 4:
            # Such a cube holds its loci un-clipped; the manifest's are clipped.
            old = (
                f" (the cube predates schema version 4, whose loci are clipped to their "
                f"chromosome: rebuild it with `pitfall build {m.path} --store NEW`)"
            )
        raise CubeError(
            f"the loci of {m.path} differ from the cube's at {loc}; the manifest must use the "
            f"same loci source, windows and chromosomes as the build{old}"
        )
    return block


def build(
    manifest: str | os.PathLike | Manifest,
    store: str | os.PathLike,
    *,
    cell_types: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    processes: bool = True,
    progress: bool = True,
    cell_types_per_commit: int | None = None,
    **storage_options: Any,
) -> BuildSummary:
    """Build a new cube at ``store`` from a manifest, whole cell types per commit.

    A failed build leaves no cube; a killed one leaves whole cell types in a cube marked
    unfinished (which :func:`~pitfall.cube.open_cube` refuses): running the same build again
    finishes it, computing only the cell types still missing.

    Parameters
    ----------
    manifest
        Path of the manifest TOML (or a loaded :class:`~pitfall.manifest.Manifest`).
    store
        Location of the new cube: a folder or a URL (``s3://bucket/prefix``, ...); it must
        not hold a cube already (use :func:`append`).
    cell_types
        Subset of the manifest's cell types; default all.
    workers
        Local Dask workers (processes, one thread each); 0 runs in this process; default:
        in this process for small builds (:data:`IN_PROCESS_BELOW`) and for labels-only
        manifests (no signal, no sequence), else ``min(2, cores)``.
    scheduler
        Address or scheduler file of a running Dask cluster; overrides ``workers``.
    client
        An existing :class:`distributed.Client` (dask-jobqueue, Gateway, Kubernetes...).
    processes
        Local workers as processes (default) or one thread in this process.
    cell_types_per_commit
        Cell types written by one commit (what a killed build can lose); default: one for
        large cell types, several small ones together
        (:func:`~pitfall.featurize.writer.commit_batches`).
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` of the cube's object store.
    """
    t0 = time.perf_counter()
    _check_per_commit(cell_types_per_commit)
    m = load(manifest)
    loc = parse_location(store)
    loci, gene_matching = plan_loci(m)
    log.info("planned %s loci in %.1f s", f"{len(loci):,}", time.perf_counter() - t0)
    check_not_empty(m, loci)
    cts = resolve_cell_types(m, cell_types)
    t1 = time.perf_counter()
    notes = check_inputs(m, loci, cts)
    log.info("checked every input in %.1f s", time.perf_counter() - t1)
    created, create, todo = False, True, cts
    try:
        repo, created = repository.create_repository(loc, **storage_options)
    except FileExistsError:
        resume = _resume_plan(loc, m, loci, cts, storage_options)
        if resume is None:
            raise
        repo, cts, todo = resume
        create = False
    writer_id = uuid.uuid4().hex
    try:
        w = _featurize(
            m,
            loci,
            todo,
            loc,
            create=create,
            planned=cts,
            repo=repo,
            workers=_workers(workers, processes, m, len(loci), len(todo)),
            scheduler=scheduler,
            client=client,
            progress=progress,
            writer_id=writer_id,
            per_commit=cell_types_per_commit,
        )
    except Exception:
        # A failed build leaves no cube: the repository it created goes (unless another build
        # committed into it first). An interrupted or killed one leaves whole cell types in a
        # cube marked unfinished, which the same build finishes when run again.
        if created:
            repository.remove_new_repository(loc, writer=writer_id, **storage_options)
        raise
    summary = _summary(w, m, loci, cts, t0, gene_matching, notes)
    summary.resumed = [ct for ct in cts if ct not in todo]
    return summary


def ensure_built(
    manifest: str | os.PathLike | Manifest | Callable[[], str | os.PathLike | Manifest],
    store: str | os.PathLike,
    **kwargs: Any,
) -> BuildSummary | None:
    """:func:`build` unless a finished cube is at ``store`` already.

    An unfinished build of the same manifest is finished (only its missing cell types are
    computed), so a pipeline killed while building resumes where it stopped.

    Parameters
    ----------
    manifest
        As :func:`build` takes it, or a function that writes it and returns it: called only
        when there is something to build, so a finished cube needs no inputs.
    store, kwargs
        As :func:`build` takes them.

    Returns
    -------
    BuildSummary or None
        The build's summary; None when the cube was there and finished.
    """
    from pitfall.cube import open_cube

    storage = {k: kwargs[k] for k in ("anonymous", "endpoint_url", "region") if k in kwargs}
    try:
        open_cube(store, **storage)
        return None
    except (CubeError, FileNotFoundError):
        pass  # no cube, an empty repository, or an unfinished build: build finishes it
    return build(manifest() if callable(manifest) else manifest, store, **kwargs)


def append(
    store: str | os.PathLike,
    manifest: str | os.PathLike | Manifest,
    cell_types: Sequence[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    processes: bool = True,
    progress: bool = True,
    cell_types_per_commit: int | None = None,
    **storage_options: Any,
) -> BuildSummary:
    """Add cell types from a manifest to the cube at ``store``, whole cell types per commit.

    The manifest must describe the cube's loci (same loci source, windows and chromosomes);
    a cell type already in the cube is refused before anything is computed. Several
    appenders (on several machines) may write to one cube at once: a commit that loses the
    race is redone at the new tip. ``cell_types_per_commit`` and the other arguments are as
    :func:`build` takes them.
    """
    t0 = time.perf_counter()
    _check_per_commit(cell_types_per_commit)
    m = load(manifest)
    loc = parse_location(store)
    repo = repository.open_repository(loc, **storage_options)
    attrs = decode_root_attrs(repository.root_attrs(repo))
    cts = resolve_cell_types(m, cell_types)
    present = sorted(set(cts) & set(repository.cell_types_of(repo)))
    if present:
        raise CubeError(f"cell types {present} are already in the cube at {loc}")
    loci, gene_matching = plan_loci(m)
    check_not_empty(m, loci)
    _check_same_loci(m, loci, attrs, loc)
    _check_same_featurization(attrs.get("featurization") or {}, m.featurization(), m, loc)
    notes = check_inputs(m, loci, cts)
    w = _featurize(
        m,
        loci,
        cts,
        loc,
        create=False,
        planned=[],
        repo=repo,
        workers=_workers(workers, processes, m, len(loci), len(cts)),
        scheduler=scheduler,
        client=client,
        progress=progress,
        per_commit=cell_types_per_commit,
    )
    return _summary(w, m, loci, cts, t0, gene_matching, notes)


def append_experiments(
    store: str | os.PathLike,
    manifest: str | os.PathLike | Manifest,
    cell_type: str,
    marks: Sequence[str],
    *,
    progress: bool = True,
    retries: int = 20,
    **storage_options: Any,
) -> BuildSummary:
    """Add experiments (``marks``) of a cell type already in the cube at ``store``: one commit.

    The manifest must describe the cube (same loci and featurization, as :func:`append`
    checks) and name a signal file for each of ``marks`` under the cell type. Refused before
    anything is computed (:class:`~pitfall.schema.CubeError`, cube unchanged): a cell type
    not in the cube, a mark not among the cube's marks, a mark the cell type has already
    (:func:`pitfall._transaction.begin_experiments`). The driver computes the marks' signal
    block by block of loci (whole chunks, at most
    :data:`~pitfall.featurize.writer.MAX_BLOCK_LOCI` loci: memory does not grow with the
    cube) and rewrites the cell type's ``signal`` chunks inside the transaction; a killed
    append leaves the cube as it was, and one that loses a race with another writer is
    computed again at the new tip (up to ``retries`` times).

    Returns
    -------
    BuildSummary
        ``cell_types`` is ``[cell_type]``, ``marks`` the marks added.
    """
    import dataclasses

    import icechunk

    from pitfall import _transaction as transaction
    from pitfall.featurize.jobs import CellTypeJob, compute_signal
    from pitfall.featurize.plan import centred_windows, file_checksum
    from pitfall.featurize.writer import MAX_BLOCK_LOCI

    t0 = time.perf_counter()
    m = load(manifest)
    loc = parse_location(store)
    marks = [str(mk) for mk in marks]
    repo = repository.open_repository(loc, **storage_options)
    attrs = decode_root_attrs(repository.root_attrs(repo))
    loci, _ = plan_loci(m)
    check_not_empty(m, loci)
    block = _check_same_loci(m, loci, attrs, loc)
    _check_same_featurization(attrs.get("featurization") or {}, m.featurization(), m, loc)
    unknown = [mk for mk in marks if mk not in m.marks]
    if unknown:
        raise CubeError(
            f"mark {', '.join(unknown)} (for cell type {cell_type}) is not among the marks of "
            f"the cube at {loc} ({', '.join(m.marks) or 'none'}); a cube's marks are fixed at "
            "its build: build a new cube with that mark in [signal] marks"
        )
    spec = m.cell_types.get(cell_type)
    if spec is None:
        raise BuildError(
            f"{m.path}: cell type {cell_type} is not in the manifest; name its signal files "
            f"under [cell_types.{cell_type}]"
        )
    lacking = [mk for mk in marks if mk not in spec.signal]
    if lacking:
        raise BuildError(
            f"{m.path}: [cell_types.{cell_type}] signal names no file for mark "
            f'{", ".join(lacking)}; add one there (signal = {{ {lacking[0]} = "FILE.bw" }})'
        )
    # Only the new experiments' files are read: a manifest naming just them is what is checked.
    only = dataclasses.replace(
        m,
        cell_types={
            cell_type: dataclasses.replace(spec, signal={mk: spec.signal[mk] for mk in marks})
        },
    )
    notes = check_inputs(only, loci, [cell_type])
    job = CellTypeJob(
        id=cell_type,
        kind=m.target_kind,
        marks=tuple(marks),
        signal=tuple(spec.signal[mk] for mk in marks),
        window=m.feature_window,
    )
    sources = {f"signal:{mk}": file_checksum(spec.signal[mk]) for mk in marks}
    snapshot, retried = "", 0
    with repository.native_errors(loc):
        for attempt in range(retries + 1):
            txn = transaction.begin_experiments(loc, cell_type, marks, sources=sources, repo=repo)
            step = max(1, MAX_BLOCK_LOCI // block) * block
            for i0, i1 in loci_mod.blocks(len(loci), step):
                table = loci.block(i0, i1)
                values = compute_signal(
                    job, table, table.chrom_runs(), centred_windows(table, job.window), notes
                )
                transaction.write_marks(txn.fork, txn.index, i0, txn.columns, values)
                repository.pause_point("during_write")
            try:
                snapshot = txn.commit()
                break
            except icechunk.ConflictError:
                if attempt == retries:
                    raise
                retried += 1
                time.sleep(0.05 * (attempt + 1))
    return BuildSummary(
        store=str(loc),
        cell_types=[cell_type],
        n_loci=len(loci),
        loci_per_chrom=loci.chrom_counts(),
        marks=marks,
        sequence_length=None,
        snapshots=[snapshot],
        seconds=time.perf_counter() - t0,
        warnings=_dedupe(notes),
        retries=retried,
        experiments=True,
    )


def _summary(
    w: Writer,
    m: Manifest,
    loci: loci_mod.LocusSet,
    cts: list[str],
    t0: float,
    gene_matching: dict[str, int] | None,
    notes: list[str],
) -> BuildSummary:
    return BuildSummary(
        store=str(w.loc),
        cell_types=cts,
        n_loci=len(loci),
        loci_per_chrom=loci.chrom_counts(),
        marks=m.marks,
        sequence_length=w.schema.sequence_length,
        snapshots=w.snapshots,
        seconds=time.perf_counter() - t0,
        gene_matching=gene_matching,
        warnings=_dedupe(notes + w.notes),
        retries=w.retries,
    )


def _dedupe(notes: list[str]) -> list[str]:
    out = list(dict.fromkeys(notes))
    for note in out:
        log.warning(note)
    return out
