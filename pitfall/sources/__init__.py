"""Readers of one file's piece as numpy: bigWig, FASTA, annotation, labels."""
