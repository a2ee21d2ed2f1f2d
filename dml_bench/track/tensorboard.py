"""TensorBoard event files in the run folder (``RUN/tensorboard/``).

``tensorboard --logdir results`` then shows every run: the training loss at every step, every
metric of metrics.csv over steps (test and validation retrieval, the RQ1/RQ3 diagnostics, timing),
and the run's config in the HParams tab (the hparams plugin's summaries, written into the same
event file as the scalars so that a reader finds them in one place).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Where the event files go inside a run folder.
FOLDER = "tensorboard"
#: The scalar tags the HParams tab shows against the hyperparameters.
HPARAM_METRICS = ("test/recall@1", "test/nmi")


class TensorBoardTracker:
    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER))
        self._end: Any = None

    def start(self, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(dict(params), {tag: 0.0 for tag in HPARAM_METRICS})
        file_writer = self.writer._get_file_writer()
        file_writer.add_summary(experiment)
        file_writer.add_summary(start)
        self._end = end
        self.writer.flush()

    def metrics(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        for step, values in points:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
        if any(tag != "train/loss" for _, values in points for tag in values):
            self.writer.flush()  # after each evaluation, so TensorBoard shows it at once

    def finish(self, status: str, run_dir: Path) -> None:
        if self._end is not None:
            self.writer._get_file_writer().add_summary(self._end)
        self.writer.close()
