"""Tiny fake datasets in the official on-disk layouts, for tests (ours and plugin authors').

Following torchvision's dataset tests (``test/datasets_utils.py``), the loaders are tested on fake
data injected into the exact layout the authors distribute, so a test exercises the same parsing
code that real data goes through. Images are small solid-colour files (one colour per class,
slightly varied per image), written with PIL.

Class ids are spread so that both halves of each zero-shot split are populated: CUB ids span
1-200 (train 1-100, test 101-200), Cars ids span 1-196 (train 1-98, test 99-196), SOP puts the
first half of the classes in ``Ebay_train.txt`` and the rest in ``Ebay_test.txt``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = (12, 10)  # width, height: not square, so resize and crop paths are exercised


def write_image(path: Path, class_index: int, item: int) -> Path:
    """A small solid-colour image (JPEG or PNG by suffix), colour set by class and item."""
    colour = (
        (37 * class_index + 11 * item) % 256,
        (91 * class_index + 7) % 256,
        (53 * class_index + 29 * item + 101) % 256,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", IMAGE_SIZE, colour).save(path)
    return path


def spread_ids(n_classes: int, total: int) -> list[int]:
    """``n_classes`` ids in ``1..total``, evenly spread (so both split halves get half)."""
    if n_classes < 2 or n_classes > total:
        raise ValueError(f"n_classes must be between 2 and {total}, got {n_classes}")
    return [1 + (i * total) // n_classes for i in range(n_classes)]


def make_cub200_tree(root: Path, n_classes: int = 8, per_class: int = 3) -> Path:
    """A fake ``CUB_200_2011`` under ``root``; returns ``root`` (the data root to pass)."""
    base = Path(root) / "CUB_200_2011"
    image_lines, label_lines, class_lines, split_lines = [], [], [], []
    image_id = 1
    for index, class_id in enumerate(spread_ids(n_classes, 200)):
        folder = f"{class_id:03d}.Bird_{class_id}"
        class_lines.append(f"{class_id} {folder}")
        for item in range(per_class):
            relative = f"{folder}/Bird_{class_id}_{item:04d}.jpg"
            write_image(base / "images" / relative, index, item)
            image_lines.append(f"{image_id} {relative}")
            label_lines.append(f"{image_id} {class_id}")
            split_lines.append(f"{image_id} {item % 2}")
            image_id += 1
    for name, lines in (
        ("images.txt", image_lines),
        ("image_class_labels.txt", label_lines),
        ("classes.txt", class_lines),
        ("train_test_split.txt", split_lines),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    return Path(root)


def make_cars196_tree(root: Path, n_classes: int = 8, per_class: int = 3) -> Path:
    """A fake ``cars196/cars_annos.mat`` + ``car_ims/`` under ``root``; returns ``root``."""
    base = Path(root) / "cars196"
    records = []
    number = 1
    for index, class_id in enumerate(spread_ids(n_classes, 196)):
        for item in range(per_class):
            relative = f"car_ims/{number:06d}.jpg"
            write_image(base / relative, index, item)
            records.append((relative, 1, 1, IMAGE_SIZE[0], IMAGE_SIZE[1], class_id, item % 2))
            number += 1
    write_cars_annotations(base, records)
    return Path(root)


def write_cars_annotations(base: Path, records: Sequence[tuple[object, ...]]) -> None:
    """Write ``base/cars_annos.mat`` as Cars196 ships it: one annotation per record
    ``(relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, test)`` and 196 class names."""
    from scipy.io import savemat

    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for column, record in enumerate(records):
        annotations[0, column] = record
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [f"Make Model {c} 2012" for c in range(1, 197)]
    savemat(str(base / "cars_annos.mat"), {"annotations": annotations, "class_names": names})


def make_sop_tree(root: Path, n_classes: int = 8, per_class: int = 3) -> Path:
    """A fake ``Stanford_Online_Products`` under ``root``; returns ``root``."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    base = Path(root) / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path"
    rows: dict[str, list[str]] = {"train": [], "test": []}
    image_id = 1
    super_classes = ["bicycle_final", "chair_final", "mug_final"]
    for index in range(n_classes):
        class_id = index + 1
        super_id = index % len(super_classes) + 1
        split = "train" if index < n_classes // 2 else "test"
        for item in range(per_class):
            relative = f"{super_classes[super_id - 1]}/{100000 + class_id}_{item}.JPG"
            write_image(base / relative, index, item)
            rows[split].append(f"{image_id} {class_id} {super_id} {relative}")
            image_id += 1
    for split, name in (("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")):
        (base / name).write_text("\n".join([header, *rows[split]]) + "\n")
    (base / "Ebay_info.txt").write_text("\n".join([header, *rows["train"], *rows["test"]]) + "\n")
    return Path(root)


def make_folder_tree(root: Path, n_classes: int = 8, per_class: int = 3) -> Path:
    """``root/class_XX/img_Y.png``: the image-folder layout; returns ``root``."""
    for index in range(n_classes):
        for item in range(per_class):
            write_image(Path(root) / f"class_{index:02d}" / f"img_{item}.png", index, item)
    return Path(root)


def make_csv_tree(
    root: Path, n_classes: int = 8, per_class: int = 3, with_split: bool = False
) -> Path:
    """``root/images/...`` and ``root/dataset.csv`` (relative paths); returns the CSV's path.

    With ``with_split``, a ``split`` column sends the first half of the classes to train.
    """
    root = Path(root)
    file = root / "dataset.csv"
    columns = ["path", "label", "split"] if with_split else ["path", "label"]
    root.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for index in range(n_classes):
            for item in range(per_class):
                relative = f"images/c{index}/{item}.jpg"
                write_image(root / relative, index, item)
                row = [relative, f"label{index}"]
                if with_split:
                    row.append("train" if index < n_classes // 2 else "test")
                writer.writerow(row)
    return file
