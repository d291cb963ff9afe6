"""The README's "Extending pitfall" section, run as written: a task, a baseline and a model
family registered by a user, then a one-model sweep that uses all three."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from pitfall import baselines, evaluate, featurize, sweep, synth, tasks
from pitfall.models import FAMILIES

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> tuple[str, str]:
    text = README.read_text()
    section = text[text.index("<!-- extending -->") :]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    return python, toml


@pytest.fixture
def registered():
    python, _ = _blocks()
    namespace: dict = {}
    exec(compile(python, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    yield namespace
    for registry, name in ((tasks.TASKS, "expression-e004"), (baselines.BASELINES, "max_activity")):
        if name in registry:
            registry.unregister(name)
    if "logistic" in FAMILIES:
        FAMILIES.unregister("logistic")


def test_readme_extension__a_task_baseline_and_family_run_in_a_sweep(registered, tmp_path) -> None:
    comp = synth.synthesize(tmp_path / "c", "tiny")
    cube_path = tmp_path / "cube"
    featurize.build(comp.manifest, cube_path, workers=0, progress=False)
    _, toml = _blocks()
    raw = tomllib.loads(toml)
    raw["cube"] = str(cube_path)
    raw["settings"] = ["hybrid"]
    spec = sweep.sweep_from_dict(raw, root=tmp_path)
    assert [e.task for e in spec.experiments] == ["expression-e004"]
    table = sweep.run_sweep(spec.experiments, tmp_path / "results", workers=0, progress=False)
    row = table.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["family"] == "logistic" and row["n_params"] == len(comp.marks) + 1
    assert "ap_max_activity" in table.columns

    # The new baseline's AP, against a naive computation on the same split: the highest
    # label over the training cell types (MaxActivity.fit keeps train's, not valid's).
    from pitfall import open_cube

    ds = open_cube(cube_path)
    split = tasks.get_task("expression-e004").split(ds, "hybrid")
    assert split.valid_cell_types == ("E004",)
    test = split.test(ds)
    ids = list(ds["cell_type"].values)
    labels = ds["label"].sel(locus=test["locus"]).values
    naive = np.nanmax(labels[[ids.index(c) for c in split.train_cell_types]], axis=0)
    want = evaluate.average_precision(test["label"].values[0], naive)
    assert row["ap_max_activity"] == pytest.approx(want, abs=1e-12)
