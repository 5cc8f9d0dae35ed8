"""What every layer above the model uses: user errors, atomic file writes and safe loads, the out
dir rules, device and precision, command-line flags from dataclasses, plots."""
