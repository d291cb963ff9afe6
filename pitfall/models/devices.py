"""Where models train: CPU or a CUDA GPU, from the libraries' own build and visible devices.

- TensorFlow trains on a GPU when it was built with CUDA (``tf.test.is_built_with_cuda()``)
  and sees one (``tf.config.list_physical_devices("GPU")``); memory growth is switched on
  for every GPU before the first model is built, so several models (or processes) can share
  one without TensorFlow taking all its memory up front.
- XGBoost trains on a GPU when its build has CUDA (``xgboost.build_info()["USE_CUDA"]``) and
  the CUDA driver reports a device (``cuDeviceGetCount``, read through ``libcuda``: right in
  containers, where device files say nothing of what is usable).
- Every model takes ``device="auto" | "cpu" | "cuda"``; ``"cuda"`` where none is usable is
  an error, not a silent fall back.
- A sweep worker on a machine with several GPUs takes one, by its worker index
  (:func:`pin_worker_gpu`, before TensorFlow or XGBoost start CUDA). CPU machines, and
  processes with one GPU, are left as they are.

Nothing here imports TensorFlow or XGBoost until asked about them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from pitfall._logs import native_stderr_silenced, quiet_tensorflow

__all__ = [
    "DEVICES",
    "DeviceError",
    "cuda_device_count",
    "keras",
    "pin_worker_gpu",
    "tensorflow",
    "tensorflow_device",
    "tensorflow_scope",
    "visible_gpus",
    "xgboost",
    "xgboost_device",
    "xgboost_has_cuda",
]

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """A device was asked for that this machine or library build cannot use."""


def _check(requested: str | None) -> str:
    requested = requested or "auto"
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {requested!r}")
    return requested


# --------------------------------------------------------------------------------------------
# CUDA, without a framework


@functools.cache
def cuda_device_count() -> int:
    """CUDA devices the driver lets this process use (0 without a driver or device).

    Asks ``libcuda`` itself (``cuInit``, ``cuDeviceGetCount``), which honours
    ``CUDA_VISIBLE_DEVICES``; call it after :func:`pin_worker_gpu`, never in a process that
    will fork workers that use CUDA.
    """
    for name in ("libcuda.so.1", "libcuda.so", "libcuda.dylib", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return 0
    count = ctypes.c_int(0)
    try:
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
    except AttributeError:
        return 0
    return int(count.value)


def visible_gpus() -> list[str]:
    """Ids of the GPUs this process may see, without starting CUDA.

    ``CUDA_VISIBLE_DEVICES`` when set (``""`` or ``-1``: none), else ``nvidia-smi -L``'s
    indices (empty without it).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        return [] if ids in ([], ["-1"]) else ids
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def pin_worker_gpu(index: int | None = None) -> str | None:
    """Give this worker process one GPU: ``CUDA_VISIBLE_DEVICES`` = GPU ``index % n_gpus``.

    Parameters
    ----------
    index
        The worker's index; default the Dask worker's name when it is an integer (a
        ``LocalCluster`` names its workers 0, 1, ...), else nothing is pinned.

    Returns
    -------
    str or None
        The GPU id pinned, or None where nothing was changed: no worker index, fewer than
        two GPUs visible (CPU machines), or TensorFlow / XGBoost already imported here (CUDA
        may be started, and then ignores the variable).
    """
    if {"tensorflow", "xgboost"} & set(sys.modules):
        return None
    if index is None:
        try:
            from distributed import get_worker

            name = get_worker().name
        except (ImportError, ValueError):
            return None
        try:
            index = int(name)
        except (TypeError, ValueError):
            return None
    gpus = visible_gpus()
    if len(gpus) < 2:
        return None
    gpu = gpus[index % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


# --------------------------------------------------------------------------------------------
# TensorFlow


@functools.cache
def tensorflow() -> Any:
    """``tensorflow``, imported with memory growth on for every GPU (once per process).

    Memory growth must be set before TensorFlow initialises a GPU, i.e. before any model is
    built: every model of this package imports TensorFlow through here.
    """
    # Silence TensorFlow's C++ start-up chatter unless the user asked for it (its oneDNN
    # notice comes before its log level is read: only the descriptor can be quieted).
    quiet_tensorflow()
    try:
        with native_stderr_silenced():
            import tensorflow as tf
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "neural models need Keras and TensorFlow: pip install 'pitfall[nn]'"
        ) from err
    for gpu in tf.config.list_physical_devices("GPU"):
        # Already initialised (someone built a model before importing us): too late, and
        # harmless.
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def keras() -> Any:
    """``keras``, after :func:`tensorflow` (so GPU memory growth is set first)."""
    tensorflow()
    import keras

    return keras


def tensorflow_device(requested: str | None = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: where TensorFlow trains for ``requested``.

    Raises
    ------
    DeviceError
        ``"cuda"`` asked for, and TensorFlow was built without CUDA or sees no GPU.
    """
    requested = _check(requested)
    if requested == "cpu":
        return "cpu"
    tf = tensorflow()
    built = bool(tf.test.is_built_with_cuda())
    gpus = tf.config.list_physical_devices("GPU")
    if built and gpus:
        return "cuda"
    if requested == "cuda":
        why = "was built without CUDA" if not built else "sees no GPU"
        raise DeviceError(f"device='cuda' asked for, but TensorFlow {why}")
    return "cpu"


@contextlib.contextmanager
def tensorflow_scope(device: str) -> Iterator[None]:
    """Place what TensorFlow builds and runs inside on ``device`` (``"cpu"`` or ``"cuda"``)."""
    tf = tensorflow()
    if not tf.config.list_physical_devices("GPU"):
        yield  # CPU is all there is: no placement to force
        return
    with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
        yield


# --------------------------------------------------------------------------------------------
# XGBoost


def xgboost() -> Any:
    """``xgboost`` (ImportError naming the extra without it)."""
    try:
        import xgboost
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "gradient-boosted trees need XGBoost: pip install 'pitfall[gbm]'"
        ) from err
    return xgboost


@functools.cache
def xgboost_has_cuda() -> bool:
    """True when the installed XGBoost was built with CUDA."""
    try:
        return bool(xgboost().build_info().get("USE_CUDA"))
    except Exception:  # an exotic build without build_info: assume CPU
        return False


def xgboost_device(requested: str | None = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: where XGBoost trains for ``requested``.

    Raises
    ------
    DeviceError
        ``"cuda"`` asked for, and XGBoost was built without CUDA or no device is usable.
    """
    requested = _check(requested)
    if requested == "cpu":
        return "cpu"
    # The build first: a CPU build never touches the CUDA driver.
    has_cuda = xgboost_has_cuda()
    if has_cuda and cuda_device_count() > 0:
        return "cuda"
    if requested == "cuda":
        why = "was built without CUDA" if not has_cuda else "finds no usable CUDA device"
        raise DeviceError(f"device='cuda' asked for, but XGBoost {why}")
    return "cpu"
