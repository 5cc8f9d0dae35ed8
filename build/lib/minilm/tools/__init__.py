"""What you do with a trained model: generate text, evaluate it on a corpus, classify texts,
draw its attention, and the metrics the reports are made of."""
