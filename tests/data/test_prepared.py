"""Prepared caches: the same pixels as decoding, resumable builds, stale caches refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dml_bench.cli.main import cli
from dml_bench.data import DATASETS, DataRequest, fakes
from dml_bench.data import prepared as prep
from dml_bench.data.transforms import photo_transforms
from dml_bench.errors import UserError
from dml_bench.train.data import SeededItems, collate

RESIZE, CROP = 24, 20


def textured_cub_tree(root: Path) -> Path:
    """A fake CUB tree whose images are random noise of varied sizes and aspect ratios, so that a
    crop or a resize that is off by one pixel changes the result (solid colours would not)."""
    fakes.make_cub200_tree(root, n_classes=6, per_class=3)
    rng = np.random.default_rng(0)
    images = sorted((root / "CUB_200_2011" / "images").rglob("*.jpg"))
    for k, path in enumerate(images):
        width, height = 31 + 7 * (k % 4), 27 + 5 * (k % 3)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=95)
    return root


def cub_split(root: Path, split: str, train: bool, caches: object = None) -> object:
    spec = DATASETS.get("cub200")
    transform = photo_transforms(train=train, resize=RESIZE, crop=CROP)
    request = DataRequest(root, split, transform, prepared=caches)  # type: ignore[arg-type]
    return spec.build(request, spec.make_config({}))


def attach(root: Path, split: str, train: bool, resize: int = RESIZE) -> tuple[object, list[Path]]:
    """A split built with the run's lookup of prepared caches, and the caches it served."""
    caches = prep.PreparedCaches(root, "cub200", split, resize)
    return cub_split(root, split, train, caches), caches.served


def prepare_cub(root: Path, **kwargs: object) -> list[prep.PrepareResult]:
    spec = DATASETS.get("cub200")
    return prep.prepare_splits(spec, spec.make_config({}), root, RESIZE, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def textured_root(tmp_path: Path) -> Path:
    return textured_cub_tree(tmp_path / "data")


@pytest.mark.parametrize("train", [True, False])
def test_cached_batches_equal_decoded_batches_bit_for_bit(textured_root: Path, train: bool) -> None:
    prepare_cub(textured_root)
    split = "train" if train else "test"
    decoded = cub_split(textured_root, split, train)
    cached, served = attach(textured_root, split, train)
    assert len(served) == 1 and cached.prepared.folder == served[0]  # type: ignore[attr-defined]
    assert decoded.prepared is None  # type: ignore[attr-defined]
    keys = [(i, 1000 + 17 * i) for i in range(len(decoded))]  # type: ignore[arg-type]
    a_images, a_labels = collate(SeededItems(decoded).__getitems__(keys))  # type: ignore[arg-type]
    b_images, b_labels = collate(SeededItems(cached).__getitems__(keys))  # type: ignore[arg-type]
    assert a_images.shape == (len(keys), 3, CROP, CROP) and a_images.dtype == torch.float32
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    if train:  # the seeds matter: other seeds give other crops, so equality above is not vacuous
        other = [(i, 5 + i) for i, _ in keys]
        c_images, _ = collate(SeededItems(cached).__getitems__(other))  # type: ignore[arg-type]
        assert not torch.equal(a_images, c_images)


def test_cache_holds_the_resize_of_each_decoded_image(textured_root: Path) -> None:
    (train, _test) = prepare_cub(textured_root)
    dataset = cub_split(textured_root, "train", True)
    cache = prep.PreparedImages(train.folder)
    for i, path in enumerate(dataset.paths):  # type: ignore[attr-defined]
        with Image.open(path) as image:
            w, h = image.size
        expected = prep.resized_pixels(path, RESIZE)
        short, long = min(w, h), max(w, h)
        size = (RESIZE, int(RESIZE * long / short))  # torchvision: shorter side to RESIZE
        assert expected.shape == ((size if h <= w else size[::-1]) + (3,))
        assert np.array_equal(cache.image(i).permute(1, 2, 0).numpy(), expected)
    manifest = json.loads((train.folder / prep.MANIFEST).read_text())
    assert manifest["images"] == len(dataset) and manifest["resize"] == RESIZE  # type: ignore[arg-type]
    assert not (train.folder / prep.PROGRESS).exists() and not (train.folder / prep.SHAPES).exists()


def test_an_interrupted_build_resumes_to_the_same_bytes(
    textured_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = cub_split(textured_root, "train", True)
    paths = dataset.paths  # type: ignore[attr-defined]
    whole = prep.build_cache(paths, tmp_path / "whole", RESIZE, dataset="cub200")
    monkeypatch.setattr(prep, "SYNC_EVERY", 2)

    def stop_after_five(n: int) -> None:
        if n == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prep.build_cache(
            paths, tmp_path / "cut", RESIZE, dataset="cub200", progress=stop_after_five
        )
    assert not (tmp_path / "cut" / prep.MANIFEST).exists()
    assert json.loads((tmp_path / "cut" / prep.PROGRESS).read_text())["images"] == 4
    with open(tmp_path / "cut" / prep.PIXELS, "ab") as f:  # bytes written after the last sync
        f.write(b"torn")
    resumed = prep.build_cache(paths, tmp_path / "cut", RESIZE, dataset="cub200")
    assert resumed.resumed_from == 4 and resumed.images == whole.images == len(paths)
    for name in (prep.PIXELS,):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    a, b = prep.PreparedImages(tmp_path / "cut"), prep.PreparedImages(tmp_path / "whole")
    for field in ("offsets", "heights", "widths", "sizes", "mtimes"):
        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_a_changed_source_image_makes_the_cache_stale(textured_root: Path) -> None:
    prepare_cub(textured_root)
    dataset = cub_split(textured_root, "train", True)
    changed = dataset.paths[2]  # type: ignore[attr-defined]
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(UserError, match="stale") as info:
        attach(textured_root, "train", True)
    assert str(changed) in str(info.value) and "--no-prepared" in str(info.value)


def test_a_truncated_cache_is_reported_as_damaged(textured_root: Path) -> None:
    (train, _test) = prepare_cub(textured_root)
    pixels = train.folder / prep.PIXELS
    with open(pixels, "r+b") as f:
        f.truncate(pixels.stat().st_size - 10)
    with pytest.raises(UserError, match="damaged") as info:
        attach(textured_root, "train", True)
    assert str(train.folder) in str(info.value) and "--no-prepared" in str(info.value)


def test_no_cache_for_another_resize_or_listing(textured_root: Path) -> None:
    prepare_cub(textured_root)
    dataset, served = attach(textured_root, "train", True, resize=RESIZE + 1)
    assert served == [] and dataset.prepared is None  # type: ignore[attr-defined]
    fewer = list(dataset.paths[:-1])  # type: ignore[attr-defined]
    assert prep.find_prepared(textured_root, "cub200", "train", RESIZE, fewer) is None


def test_a_second_prepare_leaves_a_complete_cache_alone(textured_root: Path) -> None:
    first = prepare_cub(textured_root)
    pixels = first[0].folder / prep.PIXELS
    before = pixels.stat().st_mtime_ns
    again = prepare_cub(textured_root)
    assert [r.already_complete for r in again] == [True, True]
    assert pixels.stat().st_mtime_ns == before


def test_cli_prepare_then_run_gives_the_same_metrics_as_decoding(
    textured_root: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    prepared = runner.invoke(
        cli,
        ["prepare", "--dataset", "cub200", "--data-root", str(textured_root)]
        + ["--resize", str(RESIZE), "--num-workers", "0", "--no-progress"],
    )
    assert prepared.exit_code == 0, prepared.output
    assert prepared.output.count("images") == 2  # one line per split

    def run(results: Path, *flags: str) -> list[str]:
        args = ["run", "--methods", "proxy_nca", "--dataset", "cub200"]
        args += ["--data-root", str(textured_root), "--trunk", "small_cnn", "--no-pretrained"]
        args += ["--steps", "4", "--eval-every", "2", "--batch-size", "4", "--no-progress"]
        args += ["--set", f"resize={RESIZE}", "--set", f"crop={CROP}"]
        args += ["--results-dir", str(results), *flags]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        config = json.loads((run_dir / "config.json").read_text())
        caches = config["prepared_caches"]
        assert (len(caches) == 2) == ("--no-prepared" not in flags)
        lines = (run_dir / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        timing = {header.index(c) for c in ("elapsed_s", "cpu_s", "load1", "eval_s")}
        return [",".join(v for i, v in enumerate(r.split(",")) if i not in timing) for r in lines]

    assert run(tmp_path / "cached") == run(tmp_path / "decoded", "--no-prepared")


def test_cli_prepare_refuses_a_generated_dataset(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["prepare", "--dataset", "hershey", "--data-root", str(tmp_path)]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "nothing to prepare" in message and "Traceback" not in message
    assert not (tmp_path / prep.PREPARED_FOLDER).exists()


def test_datasets_command_lists_prepared_caches(textured_root: Path) -> None:
    prepare_cub(textured_root)
    result = CliRunner().invoke(cli, ["datasets", "--data-root", str(textured_root)])
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if "prepared:" in line]
    assert len(listed) == 2  # cub200 train and test, nothing for the other datasets
    assert any("prepared: train, resize 24, 9 images" in line for line in listed)
    assert any("prepared: test, resize 24, 9 images" in line for line in listed)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--dataset", "cub200"], "does not exist"),
        (["--dataset", "cub200", "--resize", "0"], "--resize must be a positive"),
        (["--dataset", "cub200", "--num-workers", "-1"], "--num-workers must be >= 0"),
        (["--dataset", "nosuchset"], "nosuchset"),
    ],
)
def test_cli_prepare_bad_input_is_one_paragraph_and_writes_nothing(
    tmp_path: Path, args: list[str], named: str
) -> None:
    root = tmp_path / "nowhere" if args == ["--dataset", "cub200"] else textured_cub_tree(tmp_path)
    result = CliRunner().invoke(cli, ["prepare", *args, "--data-root", str(root), "--no-progress"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert named in message and "Traceback" not in message
    assert not (root / prep.PREPARED_FOLDER).exists()
