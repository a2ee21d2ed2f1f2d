"""What a finished run keeps besides its records: its model and its test embeddings.

The formats are :mod:`dml_bench.store.models`'s; ``--no-keep`` (``keep = false``) turns this off.
The best model (``--val-classes``) is written when a validation evaluation beats every earlier
one, so it is there even if the run is later interrupted; the final model, ``model.json`` and the
test embeddings are written before the run is recorded as completed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dml_bench.models.trunks import IMAGENET_MEAN_STD, TRUNKS
from dml_bench.store.models import (
    BEST,
    FINAL,
    MODEL_JSON,
    is_best,
    keep_embeddings,
    keep_weights,
    model_record,
)
from dml_bench.store.write import RunFolder
from dml_bench.train.config import RunConfig
from dml_bench.train.data import RunData, resolve_trunk

#: The validation metric that picks the best model.
SELECTION_METRIC = "val_recall@1"


def keep_if_best(
    config: RunConfig, folder: RunFolder, model: nn.Module, rows: Sequence[Mapping[str, Any]]
) -> None:
    if config.keep and rows and is_best(rows, SELECTION_METRIC):
        keep_weights(folder, BEST, model, int(rows[-1]["step"]))


def keep_final(
    config: RunConfig,
    data: RunData,
    model: nn.Module,
    folder: RunFolder,
    rows: Sequence[Mapping[str, Any]],
    test: tuple[torch.Tensor, torch.Tensor],
) -> None:
    if not config.keep:
        return
    step = int(rows[-1]["step"])
    keep_weights(folder, FINAL, model, step)
    trunk = resolve_trunk(config, data.spec)
    record = model_record(
        model,
        trunk,
        config,
        data.spec.input_kind,
        TRUNKS.get(trunk).weights_mean_std or IMAGENET_MEAN_STD,
        data.spec.channels,
    )
    record["final_step"] = step
    record["pretrained_init"] = config.pretrained and TRUNKS.get(trunk).weights_mean_std is not None
    if (folder.path / BEST).is_file():
        best = [r for r in rows if r.get(SELECTION_METRIC) is not None]
        record["weights"]["best"] = BEST
        record["best_step"] = int(max(best, key=lambda r: r[SELECTION_METRIC])["step"])
        record["best_selected_by"] = SELECTION_METRIC
    folder.write_json(MODEL_JSON, record)
    keep_embeddings(folder, test[0], test[1], data.test.classes)
