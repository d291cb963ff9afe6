"""GPU check: train a convolutional network and XGBoost trees on the GPU and on the CPU.

Builds the synthetic compendium's expression cube (``--preset demo``: 3,000 genes x 18 cell
types, 2 kbp; ``tiny`` for a quick look), then on the cross-cell-type split of E003:

- ``seq_conv`` conv 2x32 / dense 64 on one-hot sequence, ``--epochs`` x ``--batches``
  balanced batches of 32 through the loader's ``tf.data`` pipeline: mini-batches per second
  (epochs 2.., i.e. without tracing), on ``device="cuda"`` then ``device="cpu"``;
- ``xgboost`` ``--trees`` trees of depth 6 on the flattened one-hot sequence and signal of a
  balanced sample of ``--sample`` pairs: fit seconds and trees per second, on each device.

With ``--report quick|paper`` it then runs the real-data report of a fetched folder
(``pitfall report real DEST --size SIZE``, every family of the paper, Figure S4, preprint S1
and imputation): on ``--data DEST`` when given (a folder ``pitfall fetch roadmap`` filled),
else on the ``--preset`` compendium laid out as a Roadmap mirror, served on 127.0.0.1 and
fetched as a user would. It prints the report's seconds, the models trained and the devices
they trained on.

It prints what the libraries report (TensorFlow's CUDA build and GPUs, with memory growth;
XGBoost's CUDA build; the CUDA driver's device count), the device each model trained on, and
the GPU / CPU ratios. Without a usable GPU it says "no GPU" and reports the CPU alone, so it
runs anywhere.

Usage::

    python benchmarks/gpu_check.py [--work DIR] [--preset demo|tiny] [--epochs 3]
        [--batches 100] [--trees 100] [--sample 12800] [--report quick|paper] [--data DEST]

The paper-size run on the real inputs, on a GPU machine::

    pitfall fetch roadmap --dest DEST --epigenomes all
    python benchmarks/gpu_check.py --report paper --data DEST
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cubes import build_cube  # noqa: E402

from pitfall import open_cube, splits  # noqa: E402
from pitfall.models import ModelSpec, devices, make_model  # noqa: E402

CONV = ModelSpec("seq_conv", filters=(32, 32), units=(64,))


def report_devices() -> dict[str, bool]:
    """Print what TensorFlow, XGBoost and the CUDA driver say; which devices can train."""
    tf = devices.tensorflow()  # memory growth set here, before any model is built
    gpus = tf.config.list_physical_devices("GPU")
    built = bool(tf.test.is_built_with_cuda())
    print(f"TensorFlow {tf.__version__}: built with CUDA {built}; GPUs {len(gpus)}")
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        growth = tf.config.experimental.get_memory_growth(gpu)
        print(f"  {gpu.name}: {details.get('device_name', '?')}, memory growth {growth}")
    xgb = devices.xgboost()
    print(f"XGBoost {xgb.__version__}: built with CUDA {devices.xgboost_has_cuda()}")
    print(f"CUDA driver: {devices.cuda_device_count()} device(s) usable")
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    can = {
        "tensorflow": devices.tensorflow_device("auto") == "cuda",
        "xgboost": devices.xgboost_device("auto") == "cuda",
    }
    if not any(can.values()):
        print("no GPU: TensorFlow and XGBoost train on the CPU here; CPU numbers only")
    return can


def conv_rate(cube: Any, split: Any, device: str, args: argparse.Namespace) -> tuple[str, float]:
    model = make_model(
        CONV, cube, device=device, max_epochs=args.epochs, patience=args.epochs,
        batches_per_epoch=args.batches, valid_size=1024, store=args.store,
    )  # fmt: skip
    model.fit(split.train(cube), split.valid(cube))
    rows = model.history_[1:]
    return model.device_, len(rows) * args.batches / sum(r["seconds"] for r in rows)


def xgb_time(cube: Any, split: Any, device: str, args: argparse.Namespace) -> tuple[str, float]:
    spec = ModelSpec("xgboost", inputs="both", n_trees=args.trees, max_depth=6)
    model = make_model(spec, cube, device=device, sample_size=args.sample, store=args.store)
    t0 = time.perf_counter()
    model.fit(split.train(cube))
    return model.device_, time.perf_counter() - t0


def generated_fetch(work: Path, preset: str) -> Path:
    """The ``preset`` compendium as a Roadmap mirror on 127.0.0.1, fetched into ``work``."""
    import http.server
    import threading

    from pitfall import synth
    from pitfall.datasets import roadmap

    dest = work / f"{preset}_fetched"
    if roadmap.fetched_manifest(dest)[0] is not None:
        return dest
    comp = synth.synthesize(work / f"{preset}_mirror_source", preset)
    www = roadmap.write_mirror(comp, work / f"{preset}_www")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:  # one line per file would drown the output
            pass

    def handler(*a: Any, **kw: Any) -> http.server.SimpleHTTPRequestHandler:
        return Quiet(*a, directory=str(www), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        report = roadmap.fetch(dest, ["all"], comp.marks, mirror=url, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    if report.manifest is None:
        raise SystemExit(f"the fetch from the generated mirror failed: {report.notes}")
    return dest


def fetched_report(work: Path, args: argparse.Namespace) -> None:
    """``pitfall report real`` on a fetched folder at ``args.report`` size: time, devices."""
    from pitfall import sweep
    from pitfall.experiments import real_labels

    data = args.data or generated_fetch(work, args.preset)
    out = work / f"report_{args.report}_{data.name}"
    t0 = time.perf_counter()
    real_labels.run(data, out, size=args.report, progress=False)
    seconds = time.perf_counter() - t0
    table = sweep.read_results(out / "results")
    devices = table.groupby(["family", "device"]).size().to_dict()
    print(f"report real --size {args.report} on {data}: {seconds:.0f} s, {len(table)} models "
          f"({int((table['status'] == 'ok').sum())} ok); by family and device: {devices}")  # fmt: skip
    print(f"  report: {out / 'report.html'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the cube")
    parser.add_argument("--preset", default="demo", choices=["demo", "tiny"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=100, help="mini-batches per epoch")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--sample", type=int, default=12_800, help="XGBoost training pairs")
    parser.add_argument(
        "--report",
        choices=["quick", "paper"],
        default=None,
        help="also run the real-data report of a fetched folder at this size",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a folder `pitfall fetch roadmap` filled (default: generated)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "pitfall-gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    args.store = build_cube(work, args.preset)
    cube = open_cube(args.store)
    split = splits.preset(cube, "cross-cell-type", "E003")
    print(f"cube: {cube.sizes['cell_type']} cell types x {cube.sizes['locus']} loci, "
          f"{cube.sizes['position']} bp; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    can = report_devices()

    rates = {}
    for device in (["cuda"] if can["tensorflow"] else []) + ["cpu"]:
        used, rate = conv_rate(cube, split, device, args)
        rates[device] = rate
        print(f"seq_conv 2x32 / dense 64 on {used}: {rate:.1f} batches/s "
              f"({args.epochs} epochs x {args.batches} batches of 32, epochs 2..)")  # fmt: skip
    if "cuda" in rates:
        print(f"  GPU / CPU: {rates['cuda'] / rates['cpu']:.1f}x")

    seconds = {}
    for device in (["cuda"] if can["xgboost"] else []) + ["cpu"]:
        used, sec = xgb_time(cube, split, device, args)
        seconds[device] = sec
        print(f"xgboost {args.trees} trees depth 6 on {used}: {sec:.1f} s "
              f"({args.trees / sec:.1f} trees/s, {args.sample} pairs x "
              f"{cube.sizes['position'] * 4 + cube.sizes['mark']} features)")  # fmt: skip
    if "cuda" in seconds:
        print(f"  GPU / CPU: {seconds['cpu'] / seconds['cuda']:.1f}x")
    if args.report:
        fetched_report(work, args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
