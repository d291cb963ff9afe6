"""Numba kernels, each next to its slow, obviously-correct twin ``naive_<name>``.

- :mod:`pitfall.kernels.dna`: DNA letters to codes, one-hot rows, reverse complement, and
  equal-length windows of a FASTA record read straight from the file's bytes.
- :mod:`pitfall.kernels.windows`: the mean of arcsinh(signal) over windows of bigWig-style
  runs.

The twins are the oracles of the tests and the baselines of the benchmarks.
"""

from pitfall.kernels.dna import (
    BASES,
    CODE_A,
    CODE_C,
    CODE_G,
    CODE_N,
    CODE_T,
    encode_dna,
    fasta_window_codes,
    naive_encode_dna,
    naive_fasta_window_codes,
    naive_one_hot,
    naive_one_hot_dna,
    naive_reverse_complement,
    one_hot,
    one_hot_dna,
    reverse_complement,
)
from pitfall.kernels.windows import (
    add_window_arcsinh_sums,
    clip_windows,
    means_from_sums,
    naive_window_arcsinh_means,
    window_arcsinh_means,
)

__all__ = [
    "BASES",
    "CODE_A",
    "CODE_C",
    "CODE_G",
    "CODE_T",
    "CODE_N",
    "encode_dna",
    "naive_encode_dna",
    "one_hot",
    "naive_one_hot",
    "one_hot_dna",
    "naive_one_hot_dna",
    "reverse_complement",
    "naive_reverse_complement",
    "fasta_window_codes",
    "naive_fasta_window_codes",
    "window_arcsinh_means",
    "naive_window_arcsinh_means",
    "add_window_arcsinh_sums",
    "clip_windows",
    "means_from_sums",
]
