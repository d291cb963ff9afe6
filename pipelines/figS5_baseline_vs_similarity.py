"""Figure S5: the average-activity baseline's AP against the target's similarity to the others.

    python pipelines/figS5_baseline_vs_similarity.py ../shared/data [--out out/real] [--on label]
    python pipelines/figS5_baseline_vs_similarity.py --cube CUBE [--task expression]

No training. On the real Roadmap labels (56 epigenomes, E000 left out) every epigenome is
the target in turn: the baseline averages the labels of the 55 others and is scored on the
target's genes of the hybrid split's test chromosome (chr1); the target's similarity to
each other epigenome is the Pearson correlation of their labels (``--on value``: log RPKM)
over the training chromosomes' genes only (chr3-22). Draws (a) the AP and (b) the AP above
the prevalence against the mean similarity, and prints the table and Spearman correlations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _real import build_cube

from pitfall import cube, paper, report, tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", help="folder with roadmap/ (../shared/data)")
    ap.add_argument("--cube", default=None, help="any cube instead of the Roadmap one")
    ap.add_argument("--task", default="expression", help="whose hybrid split's chromosomes")
    ap.add_argument("--on", default="label", choices=["label", "value", "signal"],
                    help="what the similarity correlates")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    args = ap.parse_args()
    if args.cube is None and args.data is None:
        ap.error("give the data folder (as ../shared/data) or --cube")
    t0 = time.perf_counter()
    path = args.cube or build_cube("roadmap", args.data, args.out)
    ds = cube.open_cube(path)
    task = tasks.get_task(args.task)
    ids = [str(c) for c in ds.cell_type.values]
    target = next(iter(tasks.resolve_cell_types(ds, [task.target])), ids[0])
    # the chromosome roles of a hybrid split do not depend on the target
    split = task.split(ds, "hybrid", target)
    table = paper.baseline_vs_similarity(ds, split.train_chroms, split.test_chroms, on=args.on)
    summary = paper.similarity_summary(table)
    what = {"label": "labels", "value": "log RPKM", "signal": "signal"}[args.on]
    fig = report.baseline_vs_similarity(
        table,
        xlabel=f"target's mean correlation with the other cell types\n"
        f"({what}, genes of the {len(split.train_chroms)} training chromosomes)",
        title=f"Figure S5: the average-activity baseline against similarity, "
        f"{len(table)} targets (tested on {', '.join(split.test_chroms)})",
    )
    suffix = "" if args.on == "label" else f"_{args.on}"
    figure = report.save(
        fig, args.out / "figures" / f"figure_s5_baseline_vs_similarity{suffix}.png"
    )
    cols = ["cell_type", "name", "group", "ap", "prevalence", "ap_normalised",
            "mean_similarity", "max_similarity", "most_similar"]  # fmt: skip
    print(table[cols].sort_values("ap").to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    for key, v in summary.items():
        print(f"Spearman {key:>34}: rho = {v['rho']:+.3f} (p = {v['p']:.2g}, n = {v['n']})")
    out = args.out / "results" / f"figure_s5_{args.on}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "attrs": table.attrs,
                               "table": table.to_dict(orient="records")}, indent=2))  # fmt: skip
    print(f"\nfigure: {figure}; table: {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
