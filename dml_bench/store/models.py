"""Trained models and test embeddings kept in a run folder, in formats others read without us.

A completed run keeps (unless ``--no-keep``):

- ``model_final.safetensors``: the network's state dict after the last step (safetensors: plain
  tensors, no pickle, read by ``safetensors.torch.load_file``);
- ``model_best.safetensors``: with validation classes (``--val-classes``), the state dict at the
  evaluation with the best validation Recall@1 (docs/protocol.md: model selection never looks at the test
  classes);
- ``model.json``: what the tensors are: the trunk's name, how to build it with torch/torchvision
  alone, the embedding head, and the input the network expects (size, normalisation);
- ``embeddings_test.npz``: the final test embeddings (float32, not normalised), their labels and
  the class id of each label, read by ``numpy.load``.

State dict keys are ``trunk.*`` (the trunk) and ``head.*`` (``torch.nn.Linear(feature_dim,
embedding_size)``); the embedding of an image batch ``x`` is ``head(trunk(x))``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dml_bench.errors import UserError
from dml_bench.store.write import RunFolder

if TYPE_CHECKING:
    from dml_bench.models import Embedder

MODEL_JSON = "model.json"
FINAL = "model_final.safetensors"
BEST = "model_best.safetensors"
EMBEDDINGS = "embeddings_test.npz"

#: How to build each built-in trunk with torch/torchvision alone (the keys under ``trunk.``).
ARCHITECTURES = {
    "small_cnn": "torch.nn.Sequential(block(C, 16), block(16, 32), block(32, 64), block(64, 128), "
    "torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()) with block(i, o) = torch.nn.Sequential("
    "torch.nn.Conv2d(i, o, 3, padding=1, bias=False), torch.nn.BatchNorm2d(o), "
    "torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)) and C = in_channels",
    "googlenet": "torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False) "
    "with .fc = .dropout = torch.nn.Identity() and .transform_input = False; with in_channels != 3 "
    ".conv1.conv = torch.nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)",
    "resnet50": "torchvision.models.resnet50(weights=None) with .fc = torch.nn.Identity(); with "
    "in_channels != 3 .conv1 = torch.nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)",
}


def weights_bytes(model: nn.Module, metadata: Mapping[str, str] | None = None) -> bytes:
    """The model's state dict as safetensors bytes (contiguous CPU tensors)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata=dict(metadata or {}))


def keep_weights(folder: RunFolder, name: str, model: nn.Module, step: int) -> None:
    folder.write_bytes(name, weights_bytes(model, {"step": str(step), "run_id": folder.run_id}))


def model_record(
    model: nn.Module, trunk: str, config: Any, input_kind: str, mean_std: Any, in_channels: int
) -> dict[str, Any]:
    """``model.json``: enough to rebuild the network without dml-bench."""
    head = model.get_submodule("head")
    assert isinstance(head, nn.Linear)
    inputs: dict[str, Any] = {"kind": input_kind, "channels": in_channels}
    if input_kind == "photo":
        mean, std = mean_std
        inputs |= {
            "resize": config.resize,
            "crop": config.crop,
            "mean": list(mean),
            "std": list(std),
            "test_transform": "RGB; resize the shorter side to `resize` (bilinear), centre crop "
            "`crop`, to a float tensor in [0, 1], normalise with mean/std",
        }
    return {
        "format": "safetensors",
        "trunk": trunk,
        "pretrained_init": bool(config.pretrained),
        "in_channels": in_channels,
        "feature_dim": head.in_features,
        "embedding_size": head.out_features,
        "architecture": {
            "trunk.": ARCHITECTURES.get(trunk, f"the {trunk!r} trunk of a dml-bench plugin"),
            "head.": "torch.nn.Linear(feature_dim, embedding_size)",
        },
        "embedding": "head(trunk(x)); L2-normalise it for retrieval, as dml-bench's evaluator does",
        "input": inputs,
        "weights": {"final": FINAL},
    }


def keep_embeddings(
    folder: RunFolder, embeddings: torch.Tensor, labels: torch.Tensor, classes: Sequence[Any]
) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        embeddings=embeddings.float().cpu().numpy(),
        labels=labels.cpu().numpy().astype(np.int64),
        classes=np.asarray([str(c) for c in classes]),
    )
    folder.write_bytes(EMBEDDINGS, buffer.getvalue())


def is_best(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    """Whether the last row has the highest ``key`` so far (ties: the earliest stays best)."""
    value = rows[-1].get(key)
    if value is None or value != value:
        return False
    earlier = [r.get(key) for r in rows[:-1]]
    return all(v is None or v != v or value > v for v in earlier)


def read_model_record(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MODEL_JSON
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(
            f"{run_dir} holds no kept model ({MODEL_JSON} is missing or unreadable): only runs "
            "completed with keeping on (the default; not --no-keep) keep their model. Train it "
            "again with `dml-bench run ... --rerun`."
        ) from None
    return dict(record)


def load_kept_model(run_dir: Path, which: str = "final") -> tuple[Embedder, dict[str, Any]]:
    """Rebuild a kept model (the ``which`` weights: final or best) through dml-bench's trunks."""
    from safetensors.torch import load_file

    from dml_bench.models import build_embedder

    record = read_model_record(run_dir)
    name = record.get("weights", {}).get(which)
    if name is None:
        raise UserError(
            f"{run_dir} keeps no {which!r} model; it keeps: "
            f"{', '.join(record.get('weights', {})) or 'none'}. (A best model is kept only for "
            "runs with validation classes, --val-classes.)"
        )
    model = build_embedder(
        record["trunk"], record["in_channels"], record["embedding_size"], pretrained=False
    )
    model.load_state_dict(load_file(Path(run_dir) / name))
    model.eval()
    return model, record
