"""Optional TensorBoard logging (--tensorboard): the same metric rows as metrics.csv, as scalars.

metrics.csv stays the record; this only mirrors it where many people look. The `tensorboard`
package is an extra (pip install "minilm[tensorboard]"), checked when the run starts, so a
missing package is one clear line before any work, not a crash at the first evaluation.
"""

from __future__ import annotations

from pathlib import Path

from minilm.common.errors import UserError


class TensorBoardLog:
    """Writes metric rows to out/tensorboard when enabled; does nothing otherwise."""

    def __init__(self, enabled: bool, log_dir: Path):
        self.writer_class = summary_writer_class() if enabled else None
        self.log_dir = log_dir
        self.writer = None

    def log(self, row: dict, step: int) -> None:
        """Every number in `row` (a metrics.csv row) as a scalar at x = step."""
        if self.writer_class is None:
            return
        if self.writer is None:  # made at the first row: no empty log dir for a run that fails early
            self.writer = self.writer_class(log_dir=str(self.log_dir))
        for name, value in row.items():
            if isinstance(value, int | float) and name != "step":
                self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def summary_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError('--tensorboard needs the tensorboard package: pip install "minilm[tensorboard]" '
                        "(or drop --tensorboard; metrics.csv has the same numbers)") from None
    return SummaryWriter
