"""The dataset interface: spec validation, declared abilities, the zero-shot check, imports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dml_bench.data import DATASETS, DataRequest, fakes
from dml_bench.data.base import (
    BatchedDataset,
    DatasetConfig,
    HasThumbnails,
    PixelSource,
    assert_class_disjoint,
    default_data_root,
)
from dml_bench.data.hershey import HersheyDataset
from dml_bench.data.images import ImageListDataset
from dml_bench.errors import ConfigError, PluginError


@pytest.mark.parametrize("name", ["hershey", "cub200", "cars196", "sop", "folder", "csv"])
def test_builtin_specs_are_valid_and_named_after_their_module(name: str) -> None:
    spec = DATASETS.get(name)
    assert spec.name == name
    assert spec.build.__module__ == f"dml_bench.data.{name}"
    dataclasses.replace(spec)  # validation runs again, and passes


@dataclasses.dataclass(frozen=True)
class NoDefault(DatasetConfig):
    size: int


@dataclasses.dataclass(frozen=True)
class NotADatasetConfig:
    size: int = 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": "my-data"}, "name must be an identifier-like string"),
        ({"config_cls": dict}, "config_cls must be a dataclass type"),
        ({"config_cls": NotADatasetConfig}, "must subclass dml_bench.data.base.DatasetConfig"),
        ({"config_cls": NoDefault}, "every config_cls field needs a default"),
        ({"locate": None}, "locate must be callable"),
        ({"reference": None}, "reference must be a string"),
        ({"input_kind": "video"}, "input_kind must be 'photo' or 'tensor'"),
        ({"channels": 0}, "channels must be a positive integer"),
        ({"recall_ks": ()}, "recall_ks must be a non-empty tuple of positive integers"),
        ({"recall_ks": (1, 0)}, "recall_ks must be a non-empty tuple of positive integers"),
    ],
)
def test_invalid_specs_name_the_problem(change: dict[str, object], problem: str) -> None:
    with pytest.raises(PluginError, match="Invalid dataset spec") as info:
        dataclasses.replace(DATASETS.get("folder"), **change)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_declared_abilities_of_the_built_in_datasets(tmp_path: Path) -> None:
    glyphs = HersheyDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 1], ["a", "b"])
    assert isinstance(glyphs, BatchedDataset) and isinstance(glyphs, HasThumbnails)
    root = fakes.make_folder_tree(tmp_path / "tree", n_classes=4, per_class=2)
    spec = DATASETS.get("folder")
    photos = spec.build(DataRequest(tmp_path, "train"), spec.make_config({"path": str(root)}))
    assert isinstance(photos, ImageListDataset) and isinstance(photos, HasThumbnails)
    assert not isinstance(photos, BatchedDataset)  # decoded one by one, randomly transformed
    assert photos.prepared is None  # no lookup in the request: the original files


def test_a_request_hands_the_prepared_pixels_to_an_image_list(tmp_path: Path) -> None:
    root = fakes.make_folder_tree(tmp_path / "tree", n_classes=4, per_class=2)
    spec = DATASETS.get("folder")
    asked: list[list[Path]] = []

    class Pixels:
        folder = tmp_path / "cache"

        def image(self, index: int) -> torch.Tensor:
            return torch.full((3, 2, 2), index, dtype=torch.uint8)

    def lookup(paths: object) -> Pixels:
        asked.append(list(paths))  # type: ignore[call-overload]
        return Pixels()

    request = DataRequest(tmp_path, "train", transform=lambda image: image, prepared=lookup)
    dataset = spec.build(request, spec.make_config({"path": str(root)}))
    assert asked == [dataset.paths] and isinstance(dataset.prepared, PixelSource)
    image, _ = dataset[1]
    assert torch.equal(image, torch.full((3, 2, 2), 1, dtype=torch.uint8))


class Split:
    def __init__(self, classes: list[str]) -> None:
        self.classes = classes


def test_shared_classes_break_the_zero_shot_protocol() -> None:
    assert_class_disjoint(Split(["a", "b"]), Split(["c"]), "toy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="1 classes are in both") as info:
        assert_class_disjoint(Split(["a", "b"]), Split(["b", "c"]), "toy")  # type: ignore[arg-type]
    assert "e.g. b" in str(info.value)


def test_data_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DML_BENCH_DATA_ROOT", "~/somewhere")
    assert default_data_root() == Path("~/somewhere").expanduser()
    monkeypatch.delenv("DML_BENCH_DATA_ROOT")
    assert default_data_root() == Path.home() / ".cache" / "dml-bench"
