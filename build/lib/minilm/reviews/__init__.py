"""The embedded review world: a small synthetic corpus whose lesson (pretraining transfers to
words the labels never show) is known in advance. vocab.py (the words) -> grammar.py (sentences)
-> world.py (the corpus and labeled splits on disk) -> check.py (measuring the lesson)."""
