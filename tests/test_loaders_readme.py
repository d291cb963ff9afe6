"""The README's loader section, run as written: the PyTorch loop (a script, as a user saves it:
its DataLoader spawns workers that import it) and the Keras ``fit``, in a folder holding a
tiny synthetic cube at ``out/demo/store/expression``; then their predictions checked against
the cube's test selection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_readme_audit import _block

from pitfall import splits
from pitfall.cube import open_cube
from pitfall.featurize import build
from pitfall.synth import synthesize


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme_loaders")
    comp = synthesize(root / "synth", "tiny")
    build(comp.manifest, root / "out" / "demo" / "store" / "expression", workers=0, progress=False)
    return root


def _run_script(code: str, folder: Path, name: str) -> subprocess.CompletedProcess:
    (folder / name).write_text(code)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, name], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


def _check_predictions(folder: Path, path: str) -> None:
    """The saved DataArray scores every labelled test pair, at the cube's positions and names."""
    cube = open_cube(folder / "out" / "demo" / "store" / "expression")
    split = splits.preset(cube, "cross-cell-type", "E003")
    with xr.open_dataarray(folder / path) as da:
        da = da.load()
    assert da.dims == ("cell_type", "locus")
    assert da["cell_type"].values.tolist() == ["E003"]
    test = split.test(cube)
    labelled = ~np.isnan(test["label"].sel(cell_type="E003").values)
    want = np.asarray(test["locus"].values)[labelled]
    assert set(da["locus"].values.tolist()) <= set(np.asarray(test["locus"].values).tolist())
    scored = da["locus"].values[np.isfinite(da.values[0])]
    assert set(want.tolist()) <= set(scored.tolist())
    names = np.asarray(cube["name"].values).astype(object)
    assert [str(n) for n in da["name"].values] == names[da["locus"].values].tolist()


def test_readme__torch_loop(folder: Path) -> None:
    pytest.importorskip("torch")
    code = _block("loaders:torch")
    assert "DataLoader(train, batch_size=32, shuffle=True, num_workers=2" in code
    out = _run_script(code, folder, "train_torch.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "the torch example prints the audit's verdict"
    _check_predictions(folder, "torch_preds.nc")


def test_readme__keras_fit(folder: Path) -> None:
    pytest.importorskip("keras")
    code = _block("loaders:keras")
    assert "model.fit(train.to_keras()" in code
    out = _run_script(code, folder, "train_keras.py")
    assert out.returncode == 0, out.stderr
    assert "Epoch 2/2" in out.stdout
    _check_predictions(folder, "keras_preds.nc")
