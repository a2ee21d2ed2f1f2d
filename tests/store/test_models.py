"""Kept models and embeddings: a completed run's model, rebuilt from model.json with torch,
torchvision and safetensors alone (no dml-bench code builds or loads it), reproduces the test
embeddings the run stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchvision.transforms import v2

from dml_bench.data.folder import list_images
from tests.cli.helpers import invoke, run_args, shared_data_root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def plain_small_cnn(in_channels: int, embedding_size: int) -> nn.Module:
    """small_cnn as model.json describes it, written here with torch only."""

    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
        )

    trunk = nn.Sequential(
        block(in_channels, 16),
        block(16, 32),
        block(32, 64),
        block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return nn.Sequential(trunk, nn.Linear(128, embedding_size))


def load_plain(model: nn.Module, path: Path) -> nn.Module:
    """``trunk.*`` / ``head.*`` keys onto an nn.Sequential(trunk, head)."""
    state = load_file(path)
    renamed = {k.replace("trunk.", "0.", 1).replace("head.", "1.", 1): v for k, v in state.items()}
    model.load_state_dict(renamed)
    return model.eval()


@pytest.mark.slow
def test_glyph_model_reloads_without_dml_bench(tmp_path: Path, data_root: Path) -> None:
    results = tmp_path / "results"
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "model.json").read_text())
    assert record["trunk"] == "small_cnn" and record["weights"] == {
        "final": "model_final.safetensors"
    }
    assert not (run_dir / "checkpoint.pt").exists()
    model = load_plain(
        plain_small_cnn(record["in_channels"], record["embedding_size"]),
        run_dir / record["weights"]["final"],
    )
    stored = np.load(run_dir / "embeddings_test.npz")
    # The test images themselves come from the dataset (the glyphs are rendered, not files).
    from dml_bench.data import DATASETS, DataRequest

    spec = DATASETS.get("hershey")
    config = spec.make_config({"max_classes": 24, "images_per_class": 4, "image_size": 16})
    test = spec.build(DataRequest(data_root, "test"), config)
    images = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        embeddings = model(images).numpy()
    assert stored["embeddings"].shape == (len(test), record["embedding_size"])
    np.testing.assert_allclose(embeddings, stored["embeddings"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(stored["labels"], np.asarray(test.labels))
    # R@1 recomputed from the stored embeddings by brute force equals the run's final R@1.
    final = json.loads((run_dir / "summary.json").read_text())["final"]["recall@1"]
    e = torch.nn.functional.normalize(torch.from_numpy(stored["embeddings"]), dim=1)
    d = torch.cdist(e, e)
    d.fill_diagonal_(float("inf"))
    labels = torch.from_numpy(stored["labels"])
    assert float((labels[d.argmin(1)] == labels).float().mean()) == pytest.approx(final, abs=1e-6)


def noisy_folder(root: Path, n_classes: int = 8, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for c in range(n_classes):
        base = rng.integers(0, 256, size=3)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 40, size=(40, 48, 3)), 0, 255).astype(np.uint8)
            path = root / f"class_{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


@pytest.mark.slow
def test_photo_model_and_best_model_reload_with_torchvision(tmp_path: Path) -> None:
    tree = noisy_folder(tmp_path / "images")
    results = tmp_path / "results"
    args = [
        "run", "--methods", "proxy_nca", "--dataset", f"folder:{tree}", "--trunk", "googlenet",
        "--no-pretrained", "--resize", "36", "--crop", "32", "--steps", "4", "--eval-every", "2",
        "--batch-size", "8", "--embedding-size", "8", "--val-classes", "0.5",
        "--results-dir", str(results), "--no-progress",
    ]  # fmt: skip
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "model.json").read_text())
    assert set(record["weights"]) == {"final", "best"}
    assert record["best_step"] in (0, 2, 4)

    def plain_googlenet() -> nn.Module:
        trunk = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
        trunk.fc = trunk.dropout = nn.Identity()
        trunk.transform_input = False
        return nn.Sequential(trunk, nn.Linear(record["feature_dim"], record["embedding_size"]))

    inputs = record["input"]
    transform = v2.Compose(
        [
            v2.Resize(inputs["resize"]),
            v2.CenterCrop(inputs["crop"]),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(inputs["mean"], inputs["std"]),
        ]
    )
    stored = np.load(run_dir / "embeddings_test.npz")
    classes = [str(c) for c in stored["classes"]]
    _, items = list_images(tree)
    paths = [p for p, c in items if c in classes]  # the test split, in listing order
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    final = load_plain(plain_googlenet(), run_dir / record["weights"]["final"])
    with torch.no_grad():
        np.testing.assert_allclose(final(images).numpy(), stored["embeddings"], atol=1e-4)
    best = load_plain(plain_googlenet(), run_dir / record["weights"]["best"])
    metrics = [r for r in (run_dir / "metrics.csv").read_text().splitlines()]
    assert len(metrics) == 4  # header + steps 0, 2, 4
    with torch.no_grad():
        same = torch.allclose(best(images), final(images), atol=1e-6)
    assert same == (record["best_step"] == 4)
