"""Figure 1 g-i: AP against parameters in the three settings, TAD boundaries.

    python pipelines/fig1_tad.py [--cube CUBE] [--target E003] [--size ...] [--out DIR]

As fig1_expression.py on the 40 kb bin cube, with the paper's TAD splits (training on chr3,
validation on chr2; cross-cell-type on chr2-3).
"""

from __future__ import annotations

from fig1_expression import main

if __name__ == "__main__":
    main(task="tad", doc=__doc__)
