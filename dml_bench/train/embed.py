"""Embeddings of any dataset with a run's kept model, and files of embeddings.

``dml-bench embed RUN --dataset D --split test --out FILE`` rebuilds the model a run kept
(:mod:`dml_bench.store.models`), reads ``D``'s split with the run's test-time transform (resize,
centre crop, the trunk's normalisation) and writes the embeddings with their labels.
``dml-bench evaluate FILE`` scores such a file with dml-bench's evaluator.

Files: ``.npz`` (arrays ``embeddings`` float32 n x d, ``labels`` int64, ``classes`` the class id of
each label; ``numpy.load``) or ``.csv`` (columns ``label``, ``class``, ``e0`` … ``e{d-1}``;
``pandas.read_csv``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dml_bench.errors import ConfigError, UserError

FORMATS = (".npz", ".csv")


@dataclass(frozen=True)
class Embedded:
    embeddings: np.ndarray  # float32, n x d, as the network outputs them (not normalised)
    labels: np.ndarray  # int64, n
    classes: np.ndarray  # str, the class id of each label value


def embed_with_run(
    run_dir: Path,
    dataset: str,
    split: str = "test",
    data_root: Path | None = None,
    which: str = "final",
    device: str = "auto",
) -> Embedded:
    from dml_bench.data import DATASETS, DataRequest, default_data_root
    from dml_bench.store.models import load_kept_model
    from dml_bench.train.config import RunConfig
    from dml_bench.train.device import resolve_device
    from dml_bench.train.evaluation import EmbeddingProgress, embed_dataset
    from dml_bench.train.plan import split_dataset_name

    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test, got {split!r}.")
    model, record = load_kept_model(run_dir, which)
    name, extra = split_dataset_name(dataset)
    spec = DATASETS.get(name)
    run_config = json.loads((Path(run_dir) / "config.json").read_text())
    same = run_config.get("dataset") == name and not extra
    values = {**(run_config.get("dataset_config") or {}), **extra} if same else extra
    if spec.channels != record["in_channels"]:
        raise ConfigError(
            f"The model of {run_dir} takes {record['in_channels']}-channel images and dataset "
            f"{name!r} has {spec.channels} channels; embed a dataset like the one it trained on."
        )
    transform = None
    if spec.input_kind == "photo":
        from dml_bench.data.transforms import photo_transforms

        inputs = record["input"]
        transform = photo_transforms(
            train=False,
            resize=inputs.get("resize", 256),
            crop=inputs.get("crop", 227),
            mean=inputs.get("mean", (0.485, 0.456, 0.406)),
            std=inputs.get("std", (0.229, 0.224, 0.225)),
        )
    data = spec.build(
        DataRequest(data_root or default_data_root(), split, transform),  # type: ignore[arg-type]
        spec.make_config(values),
    )
    target = resolve_device(device)
    model = model.to(target)
    embeddings, labels = embed_dataset(
        model, data, RunConfig(device=device), target, EmbeddingProgress()
    )
    return Embedded(
        embeddings.float().cpu().numpy(),
        labels.cpu().numpy().astype(np.int64),
        np.asarray([str(c) for c in data.classes]),
    )


def check_format(path: Path) -> None:
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(
            f"{path}: embeddings files end in {' or '.join(FORMATS)} (numpy's .npz, or a CSV "
            "with columns label, class, e0, e1, ...)."
        )


def write_embeddings(path: Path, embedded: Embedded) -> None:
    from dml_bench.store.write import atomic_write_bytes

    check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npz":
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            embeddings=embedded.embeddings,
            labels=embedded.labels,
            classes=embedded.classes,
        )
        atomic_write_bytes(path, buffer.getvalue())
        return
    import pandas as pd

    frame = pd.DataFrame(
        embedded.embeddings, columns=[f"e{i}" for i in range(embedded.embeddings.shape[1])]
    )
    frame.insert(0, "class", embedded.classes[embedded.labels])
    frame.insert(0, "label", embedded.labels)
    atomic_write_bytes(path, frame.to_csv(index=False, float_format="%.9g").encode())


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of a file written by :func:`write_embeddings` (or by a run)."""
    check_format(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return np.asarray(npz["embeddings"], np.float32), np.asarray(npz["labels"])
        import pandas as pd

        frame = pd.read_csv(path)
        columns = [c for c in frame.columns if str(c).startswith("e") and str(c)[1:].isdigit()]
        if "label" not in frame.columns or not columns:
            raise KeyError("label or e0..")
        return frame[columns].to_numpy(np.float32), frame["label"].to_numpy()
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"Cannot read embeddings from {path} ({type(exc).__name__}: {exc}). Expected a .npz "
            "with arrays 'embeddings' and 'labels', or a CSV with columns label, e0, e1, ..."
        ) from None


def evaluate_file(path: Path, ks: tuple[int, ...]) -> dict[str, Any]:
    import torch

    from dml_bench.eval import evaluate

    embeddings, labels = read_embeddings(path)
    if len(embeddings) != len(labels) or len(labels) < 2:
        raise UserError(f"{path} holds {len(labels)} labels for {len(embeddings)} embeddings.")
    usable = tuple(k for k in ks if k < len(labels))
    return evaluate(torch.from_numpy(embeddings), torch.from_numpy(labels), ks=usable)
