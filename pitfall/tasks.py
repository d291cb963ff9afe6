"""Tasks: the paper's prediction problems, one registry entry each.

A :class:`Task` bundles what an experiment on a kind of cube needs besides a model: which
cubes it applies to (the manifests' label kinds, :data:`pitfall.sources.labels.LABEL_KINDS`),
its split rule (which chromosomes train, validate and test), its default target and
validation cell types, and the baselines its results are compared with (names in
:data:`pitfall.baselines.BASELINES`). The sweep, the report, the audit and the pipelines read
tasks from :data:`TASKS`; adding one is a :func:`register_task` call::

    from pitfall import tasks
    tasks.register_task(tasks.Task("enhancers", "enhancer activity", label_kinds=("peaks",)))

Built in (the paper's, Schreiber et al. 2020):

- ``expression``: gene expression on TSS windows; target H1 (E003), validation E113 E004
  E037 E106; every chromosome but the test and validation ones trains;
- ``tad``: TAD boundaries on 40 kb bins; target hESC, validation GM12878; only chr3 trains,
  and across cell types the models see chr2-3 only;
- ``binding``: TF binding on 200 bp bins (ENCODE-DREAM style), the expression rules.

Cell types given by name (``"GM12878"``) match a cube's ids first, then its display names
(``cell_type_name``), so the same task fits the synthetic compendium and the real data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import xarray as xr

from pitfall import splits
from pitfall.registry import Registry, RegistryError

log = logging.getLogger(__name__)

__all__ = ["TASKS", "Task", "TaskError", "get_task", "register_task", "resolve_cell_types"]

DEFAULT_BASELINES = ("average_activity", "most_similar", "random")


class TaskError(RegistryError):
    """An unknown task, or a task that does not fit a cube; the message says what to do."""


@dataclass(frozen=True)
class Task:
    """One prediction problem and its evaluation rules.

    Attributes
    ----------
    name
        Registry key (sweep specs say ``task = "expression"``).
    description
        One line for messages and reports.
    label_kinds
        The ``[target] kind`` of the cubes it applies to.
    target
        Default test cell type (an id or a display name).
    valid_cell_types
        Default validation cell types across cell types (ids or display names; absent ones
        are skipped).
    n_train_chroms
        How many chromosomes train (the first ones not held out); None: all of them.
    cross_cell_type_on_train_only
        Across cell types, models see only the training and validation chromosomes (the
        paper's TAD set-up), not every non-test chromosome.
    baselines
        Names in :data:`pitfall.baselines.BASELINES` the results are compared with.
    """

    name: str
    description: str
    label_kinds: tuple[str, ...]
    target: str = "E003"
    valid_cell_types: tuple[str, ...] = ()
    n_train_chroms: int | None = None
    cross_cell_type_on_train_only: bool = False
    baselines: tuple[str, ...] = DEFAULT_BASELINES

    def split(
        self,
        ds: xr.Dataset,
        setting: str,
        target: str | None = None,
        *,
        valid_cell_types: Sequence[str] | None = None,
        test_chroms: Sequence[str] = ("chr1",),
        valid_chroms: Sequence[str] = ("chr2",),
        train_chroms: Sequence[str] | None = None,
    ) -> splits.Split:
        """The paper's split of ``setting`` on this cube under this task's rules.

        Parameters
        ----------
        ds
            The cube (only its cell types and chromosomes are read).
        setting
            ``"cross-chromosome"``, ``"cross-cell-type"`` or ``"hybrid"``.
        target, valid_cell_types
            Default: the task's (ids or display names).
        test_chroms, valid_chroms, train_chroms
            Chromosome roles; ``train_chroms`` overrides the task's rule.
        """
        (target_id,) = resolve_cell_types(ds, [target or self.target], strict=True)
        asked = self.valid_cell_types if valid_cell_types is None else tuple(valid_cell_types)
        valid = resolve_cell_types(ds, asked)
        missing = [name for name in asked if not resolve_cell_types(ds, [name])]
        if missing:
            # When none is left, preset also says which it validates on instead.
            log.warning("validation cell types %s are not in the cube", missing)
        if train_chroms is None and self.n_train_chroms is not None:
            held = set(test_chroms) | set(valid_chroms)
            rest = [c for c in splits.cube_chroms(ds) if c not in held]
            train_chroms = rest[: self.n_train_chroms]
        return splits.preset(
            ds,
            setting,
            target_id,
            valid_cell_types=valid if valid or not asked else None,
            test_chroms=test_chroms,
            valid_chroms=valid_chroms,
            train_chroms=train_chroms,
            cross_cell_type_on_train_only=self.cross_cell_type_on_train_only,
        )


#: Every task, by name (:func:`register_task` adds one).
TASKS: Registry[Task] = Registry("task", error=TaskError)


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS`; return it.

    Raises
    ------
    TaskError
        Its name is taken.
    """
    return TASKS.register(task)


def get_task(name: str | Task) -> Task:
    """A registered task by name (or the task itself).

    Examples
    --------
    >>> from pitfall.tasks import get_task
    >>> get_task("expression").name
    'expression'
    >>> get_task("expresion")
    Traceback (most recent call last):
    ...
    pitfall.tasks.TaskError: unknown task 'expresion' (did you mean 'expression'?); known: ...
    """
    if isinstance(name, Task):
        return name
    return TASKS.get(name)


def resolve_cell_types(
    ds: xr.Dataset, names: Sequence[str], *, strict: bool = False
) -> tuple[str, ...]:
    """Cube ids of ``names``: each an id, else a display name (``cell_type_name``).

    Absent names are skipped, unless ``strict`` (then a :class:`~pitfall.splits.SplitError`
    names them).
    """
    ids = [str(c) for c in ds["cell_type"].values]
    by_name: dict[str, str] = {}
    if "cell_type_name" in ds.coords:
        for i, n in zip(ids, ds["cell_type_name"].values, strict=True):
            by_name.setdefault(str(n), i)
    out, missing = [], []
    for name in names:
        if name in ids:
            out.append(name)
        elif name in by_name:
            out.append(by_name[name])
        else:
            missing.append(name)
    if strict and missing:
        raise splits.SplitError(
            f"cell types {missing} are not in the cube, neither as ids nor as names "
            f"({', '.join(ids[:8])}{', ...' if len(ids) > 8 else ''})"
        )
    return tuple(dict.fromkeys(out))


register_task(
    Task(
        "expression",
        "gene expression (label: expressed) on TSS windows",
        label_kinds=("expression",),
        target="E003",
        valid_cell_types=("E113", "E004", "E037", "E106"),
    )
)
register_task(
    Task(
        "tad",
        "TAD boundaries on 40 kb bins",
        label_kinds=("domains",),
        target="hESC",
        valid_cell_types=("GM12878",),
        n_train_chroms=1,
        cross_cell_type_on_train_only=True,
    )
)
register_task(
    Task(
        "binding",
        "transcription-factor binding on genome bins",
        label_kinds=("peaks",),
        target="H1-hESC",
    )
)
