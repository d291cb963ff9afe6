"""The driver of a build or append: submit blocks, merge the workers' forks, commit in order.

Cell types are committed in the requested order, in *batches*: one cell type per commit when
it is large, several small ones together (:func:`commit_batches`), since a commit costs the
driver a fixed time that no worker can share. While batch *k* is being
written, workers with nothing left to do for it compute the blocks of later batches ahead
(kept on the worker that computed them); they are written as soon as *k* commits. A commit
that loses a race with another writer (another machine appending to the same object store)
is started again at the new tip.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pitfall import _repository as repository
from pitfall import _transaction as transaction
from pitfall import loci as loci_mod
from pitfall._logs import progress_bars
from pitfall.cluster import n_threads
from pitfall.featurize.jobs import (
    CellTypeJob,
    compute_blocks,
    compute_write_block,
    write_block,
    write_loci_block,
    write_sequence_block,
)
from pitfall.featurize.plan import locus_lengths, read_input, sequence_length
from pitfall.manifest import Manifest
from pitfall.schema import CHROM_SIZES_ATTR, CellTypeInfo, Schema
from pitfall.sources import labels
from pitfall.storage import Location

__all__ = [
    "AHEAD_BYTES",
    "AHEAD_MAX_BLOCKS",
    "COMMIT_MIN_VALUES",
    "MAX_BLOCK_LOCI",
    "MAX_SEQUENCE_BLOCK_BYTES",
    "SCATTER_LOCI",
    "TASK_MIN_VALUES",
    "TASK_ROUNDS",
    "Writer",
    "commit_batches",
    "cube_schema",
    "jobs_for",
    "task_groups",
]

log = logging.getLogger(__name__)

#: Upper bound on the loci of one task's block (rounded down to whole chunks): keeps a
#: worker's memory (runs read from a bigWig, the block's arrays) independent of cube size.
MAX_BLOCK_LOCI = 1 << 20
#: Upper bound on the bytes of one block of ``sequence``.
MAX_SEQUENCE_BLOCK_BYTES = 32 << 20


def _block_size(schema: Schema, bytes_per_locus: int, max_bytes: int | None = None) -> int:
    """Loci per task: whole chunks, at most MAX_BLOCK_LOCI (and ``max_bytes``), at least one."""
    cap = MAX_BLOCK_LOCI
    if max_bytes is not None:
        cap = min(cap, max(1, max_bytes // max(1, bytes_per_locus)))
    return max(1, cap // schema.chunk) * schema.chunk


#: Blocks computed ahead of the commit that writes them, per worker thread: as many as fit
#: in this many bytes, at least one and at most :data:`AHEAD_MAX_BLOCKS`.
AHEAD_BYTES = 64 << 20
AHEAD_MAX_BLOCKS = 32

#: Above this many loci, a locus table is sent to every worker once instead of with each
#: task (a large table is costly to pickle, and the scheduler pickles it again).
SCATTER_LOCI = 1_000

#: A commit carries at least this many values (loci x cell types x (marks + 1)) when the
#: cell types allow: below it the driver's commits, not the workers, would set the pace.
COMMIT_MIN_VALUES = 1_000_000


def commit_batches(
    n_cell_types: int, values_per_cell_type: int, per_commit: int | None = None
) -> list[list[int]]:
    """Group cell types ``0 .. n_cell_types - 1``, in order, into commits.

    Parameters
    ----------
    n_cell_types
        Cell types to write.
    values_per_cell_type
        Loci x (marks + 1) of one cell type.
    per_commit
        Cell types per commit; default: enough to carry :data:`COMMIT_MIN_VALUES` values
        (one for a cell type of that size or more).

    Returns
    -------
    list of list of int
        Consecutive runs of cell-type positions, one per commit.
    """
    if per_commit is None:
        per_commit = -(-COMMIT_MIN_VALUES // max(1, values_per_cell_type))
    if per_commit < 1:
        raise ValueError(f"cell types per commit must be at least 1, not {per_commit}")
    return [
        list(range(a, min(a + per_commit, n_cell_types)))
        for a in range(0, n_cell_types, per_commit)
    ]


#: A task carries at least this many values (loci x cell types x (marks + 1)) when its batch
#: allows: small cell types share a task, so the driver's fixed cost per task (the
#: scheduler's messages, on the driver's cores) is paid once for several.
TASK_MIN_VALUES = 100_000
#: ...while each worker thread still gets at least this many tasks of a batch to balance.
#: Two, not three: each task also costs a write of its block and the scheduler's round trips,
#: so fewer, larger tasks build a small cube faster (``docs/performance.rst``).
TASK_ROUNDS = 2


def task_groups(n_cell_types: int, values_per_cell_type: int, threads: int) -> list[list[int]]:
    """Split the cell types ``0 .. n_cell_types - 1`` of one commit batch into tasks.

    Parameters
    ----------
    n_cell_types
        Cell types in the batch.
    values_per_cell_type
        Loci x (marks + 1) of one cell type.
    threads
        Worker threads of the cluster.

    Returns
    -------
    list of list of int
        Consecutive runs of positions, as even as possible, one per task: enough cell types
        to carry :data:`TASK_MIN_VALUES` values, but at least :data:`TASK_ROUNDS` tasks per
        thread, and a multiple of ``threads`` tasks when there are more tasks than threads.
    """
    if n_cell_types < 1:
        return []
    threads = max(1, threads)
    per = min(
        -(-TASK_MIN_VALUES // max(1, values_per_cell_type)),
        -(-n_cell_types // (TASK_ROUNDS * threads)),
    )
    n_tasks = -(-n_cell_types // max(1, per))
    n_tasks = min(n_cell_types, -(-n_tasks // threads) * threads)
    q, r = divmod(n_cell_types, n_tasks)
    out, a = [], 0
    for i in range(n_tasks):
        b = a + q + (i < r)
        out.append(list(range(a, b)))
        a = b
    return out


@dataclass
class _Item:
    """One block of loci of one task's cell types (a group), through compute (ahead) and write."""

    g: int
    i0: int
    i1: int
    future: Any = None
    state: str = "pending"  # pending | computing | computed | writing | written


class Writer:
    """Drives the task graph: commit in order, bounded work in flight, compute ahead.

    Two budgets: tasks of the batch of cell types being committed (the *head*, one per
    worker thread, so each task goes to the first worker free rather than to a queue Dask
    fills ahead of time), and blocks computed ahead (running or done and waiting on their
    worker; :data:`AHEAD_BYTES` per thread). Head tasks run before ahead tasks (Dask
    priorities), so a commit is never starved.
    """

    def __init__(
        self,
        client: Any,
        loc: Location,
        m: Manifest,
        loci: loci_mod.LocusSet,
        cell_types: list[str],
        jobs: list[CellTypeJob],
        schema: Schema,
        *,
        create: bool,
        planned: list[str],
        repo: Any,
        progress: bool,
        writer_id: str = "",
        per_commit: int | None = None,
    ) -> None:
        self.client, self.loc, self.m, self.schema = client, loc, m, schema
        self.cell_types, self.jobs, self.create, self.repo = cell_types, jobs, create, repo
        self.planned = planned
        self.writer_id = writer_id
        self.n_loci = len(loci)
        self.sizes = loci_mod.chrom_sizes(loci)
        threads = n_threads(client)
        self.limit = threads
        bytes_per_locus = 4 * (2 + len(schema.marks))  # label, value and signal, float32
        step = _block_size(schema, bytes_per_locus)
        values_per_ct = self.n_loci * (1 + len(schema.marks))
        self.batches = commit_batches(len(cell_types), values_per_ct, per_commit)
        # Each batch's cell types in tasks (groups of consecutive cell types), in order.
        self.groups: list[list[int]] = []
        self.batch_groups: list[list[int]] = []
        for batch in self.batches:
            runs = task_groups(len(batch), values_per_ct, threads)
            self.batch_groups.append(list(range(len(self.groups), len(self.groups) + len(runs))))
            self.groups += [[batch[i] for i in run] for run in runs]
        self.batch_of = {g: b for b, gs in enumerate(self.batch_groups) for g in gs}
        # Small blocks may be computed further ahead (the driver's first transaction and its
        # commits then do not leave workers idle); large ones stay at one per thread.
        widest = max((len(g) for g in self.groups), default=1)
        block_bytes = min(step, self.n_loci) * bytes_per_locus * widest
        self.ahead_limit = min(
            AHEAD_MAX_BLOCKS * threads,
            max(self.limit, AHEAD_BYTES * threads // max(1, block_bytes)),
        )
        self.items = [
            [_Item(g, a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
            for g in range(len(self.groups))
        ]
        self.todo = [deque(items) for items in self.items]
        # A large locus table goes to every worker once, not pickled with every task.
        self.loci = (
            client.scatter(loci, broadcast=True)
            if isinstance(loci, loci_mod.LocusTable) and len(loci) > SCATTER_LOCI
            else loci
        )
        self.by_future: dict[Any, tuple[str, Any]] = {}
        self.n_head = 0
        self.n_ahead = 0
        self.notes: list[str] = []
        self.snapshots: list[str] = []
        self.retries = 0
        self.progress = progress
        self.sources: dict[int, dict[str, Any]] = {}  # cell type -> checksums of its files

    def _submit(self, kind: str, obj: Any, fn: Callable[..., Any], *args: Any) -> Any:
        # Dask runs a worker's queue in submission order unless told otherwise: the head
        # batch's tasks go first, so blocks computed ahead never delay the next commit.
        fut = self.client.submit(fn, *args, pure=False, priority=0 if kind == "compute" else 1)
        self.by_future[fut] = (kind, obj)
        self.ac.add(fut)
        return fut

    # -- transactions ------------------------------------------------------------------------

    def _begin(self, b: int) -> None:
        """Start batch ``b``'s transaction and write the blocks of it computed ahead."""
        infos = []
        for k in self.batches[b]:
            ct = self.cell_types[k]
            spec = self.m.cell_types.get(ct)
            marks = tuple(mk for mk in self.m.marks if mk in spec.signal) if spec else None
            infos.append(
                CellTypeInfo(ct, spec.name if spec else ct, spec.group if spec else "", marks=marks)
            )
        first = self.create and b == 0
        if first:
            self.txn = transaction.begin_create(
                self.loc,
                self.schema,
                infos,
                assembly=self.m.assembly,
                attrs={CHROM_SIZES_ATTR: self.sizes} if self.sizes else None,
                repo=self.repo,
            )
        else:
            self.txn = transaction.begin_append(self.loc, infos, repo=self.repo)
        self.txn.writer = self.writer_id
        self.head = b
        self.fork_bytes = _pickle(self.txn.fork)
        self.forks: list[Any] = []
        self.finished: list[tuple[str, Any, Any]] = []
        self.extra: deque[tuple[str, int, int]] = deque()
        self.n_extra = 0
        self.digests: dict[int, str] = {}
        if first:
            step = _block_size(self.schema, 64)
            self.extra += [("loci", i0, i1) for i0, i1 in loci_mod.blocks(self.n_loci, step)]
            if self.schema.sequence_length:
                step = _block_size(
                    self.schema, self.schema.sequence_length, MAX_SEQUENCE_BLOCK_BYTES
                )
                self.extra += [
                    ("sequence", i0, i1) for i0, i1 in loci_mod.blocks(self.n_loci, step)
                ]
        for g in self.batch_groups[b]:
            for it in self.items[g]:
                if it.state == "computed":
                    self._write_computed(it)

    def _index(self, g: int) -> int:
        """Position along ``cell_type`` of the first cell type of group ``g`` (head batch)."""
        return self.txn.index + self.groups[g][0] - self.batches[self.head][0]

    def _write_computed(self, it: _Item) -> None:
        computed = it.future
        # Pinned to the worker holding the block, and short: outside the head budget, which
        # paces the tasks any worker can take.
        it.future = self._submit(
            "pinned", it, write_block, self.fork_bytes, self._index(it.g), computed
        )
        it.state = "writing"
        self.n_ahead -= 1
        computed.release()

    def _commit(self) -> None:
        import icechunk

        self._gather()
        b = self.head
        cts = [self.cell_types[k] for k in self.batches[b]]
        attrs = self.txn.attrs
        attrs["cell_type_sources"] = {
            **attrs.get("cell_type_sources", {}),
            **{self.cell_types[k]: self.sources[k] for k in self.batches[b]},
        }
        if self.planned:
            attrs["build"] = {
                "cell_types": self.planned,
                "complete": b == len(self.batches) - 1,
            }
        first = self.create and b == 0
        if first:
            attrs["featurization"] = self.m.featurization()
            attrs["locus_fingerprint"] = loci_mod.combine_digests(
                [self.digests[a] for a in sorted(self.digests)], self.n_loci
            )
        try:
            message = f"create with {', '.join(cts)}" if first else None
            self.snapshots.append(self.txn.commit(self.forks, message=message))
        except icechunk.ConflictError as err:
            if first:
                raise FileExistsError(
                    f"{self.loc}: another build committed a cube there first; this build "
                    "stops (choose another --store, or append to that cube)"
                ) from err
            # Another writer appended first: these cell types start again at the new tip.
            self.retries += 1
            for g in self.batch_groups[b]:
                for it in self.items[g]:
                    it.state, it.future = "pending", None
                self.todo[g] = deque(self.items[g])
            self._begin(b)
            return
        committed = self.batches[b][-1] + 1  # batches are committed in order
        self.bar.set_postfix(committed=f"{committed}/{len(self.cell_types)}", last=cts[-1])
        log.info(
            "committed %s (%d of %d cell types) at %.1f s",
            ", ".join(cts),
            committed,
            len(self.cell_types),
            time.perf_counter() - self.t0,
        )
        if b + 1 < len(self.batches):
            self._begin(b + 1)

    # -- the loop ----------------------------------------------------------------------------

    def _fill(self) -> None:
        while self.extra and self.n_head < self.limit:
            kind, a, b = self.extra.popleft()
            if kind == "loci":
                self._submit(
                    kind, a, write_loci_block, self.fork_bytes, self.loci, a, b, self.schema
                )
            else:
                self._submit(
                    kind,
                    a,
                    write_sequence_block,
                    self.fork_bytes,
                    self.m.fasta,
                    self.loci,
                    a,
                    b,
                    sequence_length(self.m),
                )
            self.n_head += 1
            self.n_extra += 1
        for g in self.batch_groups[self.head]:
            while self.todo[g] and self.n_head < self.limit:
                it = self.todo[g].popleft()
                it.future = self._submit(
                    "write",
                    it,
                    compute_write_block,
                    self.fork_bytes,
                    self._index(g),
                    self._jobs(g),
                    self.loci,
                    it.i0,
                    it.i1,
                )
                it.state = "writing"
                self.n_head += 1
        self._fill_ahead(self.batch_groups[self.head][-1] + 1)

    def _jobs(self, g: int) -> list[CellTypeJob]:
        return [self.jobs[k] for k in self.groups[g]]

    def _fill_ahead(self, start: int) -> None:
        """Compute blocks of groups ``start`` onwards, within the ahead budget."""
        for later in range(start, len(self.items)):
            while self.todo[later] and self.n_ahead < self.ahead_limit:
                it = self.todo[later].popleft()
                it.future = self._submit(
                    "compute", it, compute_blocks, self._jobs(later), self.loci, it.i0, it.i1
                )
                it.state = "computing"
                self.n_ahead += 1
            if self.n_ahead >= self.ahead_limit:
                break

    def _head_done(self) -> bool:
        return (
            not self.extra
            and self.n_extra == 0
            and all(
                it.state == "written" for g in self.batch_groups[self.head] for it in self.items[g]
            )
        )

    def _done(self, fut: Any) -> None:
        kind, obj = self.by_future.pop(fut)
        if fut.status == "error":
            fut.result()  # raises the task's error here, with its own message
        if kind == "compute":
            # The block stays on its worker until written: nothing travels to the driver.
            obj.state = "computed"
            if self.batch_of[obj.g] == self.head:
                self._write_computed(obj)
            return
        # The forks come back in one batch at the commit, not one round trip each.
        self.finished.append((kind, obj, fut))
        if kind != "pinned":
            self.n_head -= 1
        if kind in ("loci", "sequence"):
            self.n_extra -= 1
        else:
            obj.state, obj.future = "written", None
            self.bar.update(len(self.groups[obj.g]))
            repository.pause_point("during_write")

    def _gather(self) -> None:
        """Fetch the finished tasks' forks (and digests, notes, sources) for the commit."""
        futures = [f for _, _, f in self.finished]
        for (kind, obj, _), result in zip(self.finished, self.client.gather(futures), strict=True):
            if kind == "loci":
                fork, digests = result
                self.digests.update(digests)
            elif kind == "sequence":
                fork = result
            else:
                fork, notes, sources = result
                self.notes += notes
                for k, src in zip(self.groups[obj.g], sources, strict=True):
                    if src is not None:
                        self.sources[k] = src
            self.forks.append(fork)
        for f in futures:
            f.release()
        self.finished = []

    def run(self) -> None:
        from distributed import as_completed
        from tqdm.auto import tqdm

        n_blocks = sum(len(items) * len(self.groups[g]) for g, items in enumerate(self.items))
        self.bar = tqdm(
            total=n_blocks, desc="featurize", unit="block", disable=not progress_bars(self.progress)
        )
        self.t0 = time.perf_counter()
        self.ac = as_completed([])
        try:
            # Workers compute while the driver prepares the first commit's metadata (a
            # worker's queue of blocks ahead also spares it a round trip to the driver
            # between tasks).
            self._fill_ahead(0)
            self._begin(0)
            while True:
                self._fill()
                if self._head_done():
                    self._commit()
                    if len(self.snapshots) == len(self.batches):
                        break
                    continue
                self._done(next(self.ac))
        finally:
            self.bar.close()
            for f in list(self.by_future):
                f.cancel()


def _pickle(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj)


def jobs_for(m: Manifest, loci: loci_mod.LocusSet, cell_types: list[str]) -> list[CellTypeJob]:
    table = read_input(m.target_kind, m.table) if labels.label_kind(m).table else None
    values_of: dict[str, np.ndarray] = {}
    if table is not None:
        ids = labels.locus_gene_ids(loci.block(0, len(loci))).to_numpy()
        # The table's row of each locus (-1: not in the table), once for every cell type.
        rows = table.index.get_indexer(ids)
        for ct in cell_types:
            values_of[ct] = table[ct].to_numpy(dtype=np.float32)[rows]  # a copy
            values_of[ct][rows < 0] = np.nan
    jobs = []
    options = labels.label_kind(m).options
    for ct in cell_types:
        spec = m.cell_types.get(ct)
        values, files = options(m, ct) if options is not None else ({}, {})
        jobs.append(
            CellTypeJob(
                id=ct,
                kind=m.target_kind,
                marks=tuple(m.marks),
                signal=tuple(spec.signal.get(mk) for mk in m.marks) if spec else (),
                target=spec.target if spec else None,
                values=values_of.get(ct),
                threshold=m.threshold,
                window=m.feature_window,
                files=_files(m, ct),
                place_options=tuple(values.items()),
                place_files=tuple(files.items()),
            )
        )
    return jobs


def _files(m: Manifest, ct: str) -> tuple[tuple[str, Any], ...]:
    """The files a cell type is computed from, by role, as its cube attributes name them."""
    spec = m.cell_types.get(ct)
    files: dict[str, Any] = {}
    if spec is not None:
        files = {f"signal:{k}": v for k, v in spec.signal.items()}
        if spec.target is not None:
            files["target"] = spec.target
        if spec.ambiguous is not None:
            files["ambiguous"] = spec.ambiguous
    for role, path in (("table", m.table), ("blacklist", m.blacklist)):
        if path is not None:
            files[role] = path
    return tuple(files.items())


def cube_schema(m: Manifest, loci: loci_mod.LocusSet) -> Schema:
    """The shape of the cube of ``m`` over ``loci`` (string widths from the loci)."""
    seq_len = None
    if m.fasta is not None:
        seq_len = sequence_length(m) or int(locus_lengths(loci)[0])
    if isinstance(loci, loci_mod.GenomeBins):
        chroms = np.array([c for c, _ in loci.sizes], dtype=object)
        widths = {"chrom_width": loci_mod.string_width(chroms)}
        strand = name = window = False
    else:
        table = loci.block(0, len(loci))
        widths = {
            "chrom_width": loci_mod.string_width(table.chrom),
            "name_width": loci_mod.string_width(table.names()),
        }
        strand = name = True
        window = table.window_start is not None
    return Schema(
        n_loci=len(loci),
        locus_chunk=m.locus_chunk,
        marks=tuple(m.marks),
        value=labels.label_kind(m).table,
        sequence_length=seq_len,
        strand=strand,
        name=name,
        window=window,
        **widths,
    )
