"""Readers of one file's piece as numpy: bigWig, FASTA, annotation, labels."""

__all__: list[str] = []
