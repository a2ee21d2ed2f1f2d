"""``trunk=auto``: a trunk, its weights and the image sizes that suit the data and the machine.

A run that names no trunk gets one chosen before any run is planned, from three facts:

- the images: the embedded glyphs are 32 px tensors; for photos, the median shorter side of up to
  :data:`SIZE_SAMPLE` training images (read from the file headers, nothing decoded);
- the device: ``auto``/``cuda`` with a GPU, or the CPU;
- the weights: whether torchvision's ImageNet weights of GoogLeNet are already in the torch hub
  cache (``~/.cache/torch/hub/checkpoints``), so nothing has to be downloaded.

For photos the choice is written into the run's config (``trunk``, ``pretrained``, ``resize``,
``crop``), so the run id and ``config.json`` name what ran, and it is said in one line. Tensor
datasets (the glyphs) always get ``small_cnn``, which no environment changes: their config keeps
``trunk = "auto"``, so runs already recorded keep their run ids. Explicit values (flags,
``--set``, the config file, a preset) are never replaced: only what the user left open is chosen.

The paper's set-up (Sec. 5: ImageNet-pretrained Inception with batch norm, resize 256, random crop
227) is what ``auto`` picks on a GPU, and on a CPU when the weights are at hand and the images are
large enough for them. On a CPU without weights, or for small images, it picks ``small_cnn`` from
scratch at the images' own size (at most :data:`SMALL_RESIZE` px): GoogLeNet from scratch on 227 px
crops of 64 px images costs seconds a step on a laptop CPU and learns from upsampled pixels.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dml_bench.config import _coerce_scalar
from dml_bench.data import DataRequest, DatasetSpec, default_data_root

logger = logging.getLogger(__name__)

#: Training images whose size is read to choose the input size.
SIZE_SAMPLE = 50
#: Below this median shorter side (px), photos are too small for an ImageNet trunk on a CPU.
MIN_PRETRAINED_SIDE = 128
#: The largest resize ``auto`` picks for ``small_cnn``.
SMALL_RESIZE = 72
#: The paper's input sizes (Sec. 5).
PAPER_RESIZE, PAPER_CROP = 256, 227


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` filled in, and the one line that says why."""

    values: dict[str, Any]
    reason: str


def choose(values: Mapping[str, Any], spec: DatasetSpec[Any], dataset_config: Any) -> AutoChoice:
    """The run options ``auto`` fills in for ``values`` (those the user left open)."""
    trunk = str(values.get("trunk", "auto"))
    explicit_pretrained = _bool_or_none(values.get("pretrained"))
    picked: dict[str, Any] = {}
    if spec.input_kind == "tensor":
        # Always small_cnn, wherever it runs: the config keeps "auto" (resolved by
        # train.data.resolve_trunk), so the run ids of runs already recorded stay the same.
        if trunk == "small_cnn" and explicit_pretrained:
            return AutoChoice({}, "small_cnn has no pretrained weights: it trains from scratch")
        return AutoChoice({}, "")  # nothing chosen, so nothing to say
    side = median_side(values, spec, dataset_config) if _needs_side(values, trunk) else None
    facts: list[str] = [] if side is None else [f"images ~{side} px"]
    if trunk == "auto":
        trunk, pretrained, why = _pick_trunk(values, side, explicit_pretrained)
        picked["trunk"] = trunk
        if explicit_pretrained is None:
            picked["pretrained"] = pretrained
        facts = [*facts, *why]
    elif trunk == "small_cnn" and explicit_pretrained is None:
        picked["pretrained"] = False  # it has no weights
    elif trunk == "small_cnn" and explicit_pretrained:
        facts.append("small_cnn has no pretrained weights: it trains from scratch")
    picked.update(_sizes(values, trunk, side))
    if not picked:
        return AutoChoice({}, facts[-1] if explicit_pretrained and trunk == "small_cnn" else "")
    shown = ", ".join(f"{k}={v}" for k, v in picked.items())
    return AutoChoice(
        picked,
        f"auto: {shown} ({'; '.join(facts)}); set --trunk, --resize, --crop or --pretrained "
        "to choose yourself",
    )


def _needs_side(values: Mapping[str, Any], trunk: str) -> bool:
    return trunk == "auto" or "resize" not in values or "crop" not in values


def _pick_trunk(
    values: Mapping[str, Any], side: int | None, explicit_pretrained: bool | None
) -> tuple[str, bool, list[str]]:
    device = _device_kind(str(values.get("device", "auto")))
    cached = googlenet_weights_cached()
    why = [f"device {device}", "GoogLeNet weights " + ("cached" if cached else "not downloaded")]
    if explicit_pretrained is True or device == "cuda":
        return "googlenet", explicit_pretrained is not False, why
    large = side is None or side >= MIN_PRETRAINED_SIDE
    if cached and large and explicit_pretrained is None:
        return "googlenet", True, why
    return "small_cnn", False, why


def _sizes(values: Mapping[str, Any], trunk: str, side: int | None) -> dict[str, int]:
    if trunk == "small_cnn" and side is not None:
        resize = min(side, SMALL_RESIZE)
        crop = max(8, resize * 7 // 8)
    else:
        resize, crop = PAPER_RESIZE, PAPER_CROP
    out: dict[str, int] = {}
    given_resize = _int_or_none(values.get("resize"))
    given_crop = _int_or_none(values.get("crop"))
    if given_resize is None:
        out["resize"] = max(resize, given_crop or 0)
    if given_crop is None:
        out["crop"] = min(crop, given_resize or resize)
    return out


def median_side(values: Mapping[str, Any], spec: DatasetSpec[Any], dataset_config: Any) -> int:
    """The median shorter side, in px, of up to :data:`SIZE_SAMPLE` evenly spaced train images."""
    root = values.get("data_root")
    request = DataRequest(
        Path(str(root)).expanduser() if root else default_data_root(),
        "train",
        None,
        bool(_bool_or_none(values.get("download"))),
    )
    dataset = spec.build(request, dataset_config)
    n = len(dataset)
    indices = sorted({i * n // SIZE_SAMPLE for i in range(min(n, SIZE_SAMPLE))})
    return int(statistics.median(_shorter_side(dataset, i) for i in indices)) if n else 0


def _shorter_side(dataset: Any, index: int) -> int:
    paths = getattr(dataset, "paths", None)
    if paths is not None:
        from PIL import Image

        try:
            with Image.open(paths[index]) as image:
                return min(image.size)
        except OSError:
            pass  # a corrupt image is reported by name when the run reads it
    image = dataset[index][0]
    size = getattr(image, "size", None)
    if isinstance(size, tuple):
        return int(min(size))
    return int(min(image.shape[-2:]))


def googlenet_weights_cached() -> bool:
    """Whether torchvision's GoogLeNet ImageNet weights are in the torch hub cache."""
    import torch
    from torchvision.models import GoogLeNet_Weights

    name = GoogLeNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()


def _device_kind(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(_coerce_scalar(value, bool, "pretrained"))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(_coerce_scalar(value, int, "resize/crop"))
