"""Preprint Figure S1: PCA and UMAP of a cell type's epigenomic signal, coloured by activity.

    python pipelines/preprint_figS1_pca_umap.py [--cube CUBE] [--target E003] [--out DIR]

Each locus is its vector of marks (standardised); active and inactive loci fall on either
side of a simple boundary, which is why epigenomic models gain little from size (see
preprint Figure S2). UMAP needs the optional ``umap`` extra (``pip install 'pitfall[umap]'``);
without it the figure shows PCA alone and says so.
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import cube as cubes_mod
from pitfall import paper, report


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cubes_mod.open_cube(cubes(args)["expression"])
    emb = paper.signal_embedding(ds, args.target)
    marks = ", ".join(map(str, ds["mark"].values)) if "mark" in ds.coords else "signal"
    fig = report.signal_embedding(
        emb, f"Preprint Figure S1: epigenomic signal of {args.target} ({marks})"
    )
    path = report.save(fig, args.out / "figures" / "preprint_figure_s1_pca_umap.png")
    ev = emb.attrs["explained"]
    print(f"{emb.attrs['n_loci']:,} loci x {emb.attrs['features']} features; PC1 {ev[0]:.1%}, "
          f"PC2 {ev[1]:.1%} of the variance; {len(emb):,} loci drawn")  # fmt: skip
    if emb.attrs["note"]:
        print(emb.attrs["note"])
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
