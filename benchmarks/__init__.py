"""Benchmarks for minilm: machine peak, training, generation, scaling, fine-tuning (see README.md)."""
