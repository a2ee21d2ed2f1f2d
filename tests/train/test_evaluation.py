"""Evaluation inside a run: embedding a split, its metrics, diagnostics, retrieval examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml_bench.data.hershey import HersheyDataset, to_unit_range
from dml_bench.eval import evaluate
from dml_bench.methods import METHODS, build_method
from dml_bench.methods._proxies import proxy_diagnostics
from dml_bench.methods.base import DiagnosticBatch
from dml_bench.models import build_embedder
from dml_bench.train.config import RunConfig
from dml_bench.train.evaluation import (
    EmbeddingProgress,
    compute_diagnostics,
    embed_dataset,
    evaluate_split,
    retrieval_examples,
)

CPU = torch.device("cpu")


def glyphs(num_classes: int = 6, per_class: int = 4) -> HersheyDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (num_classes * per_class, 1, 16, 16), generator=generator)
    labels = [k // per_class for k in range(num_classes * per_class)]
    return HersheyDataset(images.to(torch.uint8), labels, [f"g{k}" for k in range(num_classes)])


def config(**values: object) -> RunConfig:
    base = {"eval_batch_size": 5, "embedding_size": 8, "diagnostic_triplets": 40}
    return RunConfig(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_embedder("small_cnn", 1, 8, pretrained=False)


class Count:
    def __init__(self) -> None:
        self.updates, self.closed = 0, False

    def __call__(self, **_: object) -> Count:
        return self

    def update(self, n: int = 1) -> None:
        self.updates += n

    def close(self) -> None:
        self.closed = True


def test_embeddings_are_the_model_in_eval_mode_on_every_item(model: torch.nn.Module) -> None:
    dataset = glyphs()
    model.train()
    bar = Count()
    progress = EmbeddingProgress(bar, total=5)
    embeddings, labels = embed_dataset(model, dataset, config(), CPU, progress)
    assert model.training  # restored
    assert bar.updates == 5 and bar.closed  # 24 items in batches of 5
    model.eval()
    with torch.no_grad():
        expected = model(to_unit_range(dataset.images))
    torch.testing.assert_close(embeddings, expected)
    assert labels.tolist() == list(dataset.labels) and embeddings.dtype == torch.float32


def test_embedding_a_subset_follows_the_given_order(model: torch.nn.Module) -> None:
    dataset = glyphs()
    every, _ = embed_dataset(model, dataset, config(), CPU, EmbeddingProgress())
    picked = [7, 2, 19, 2]
    some, labels = embed_dataset(model, dataset, config(), CPU, EmbeddingProgress(), picked)
    torch.testing.assert_close(some, every[picked])
    assert labels.tolist() == [dataset.labels[i] for i in picked]


def test_split_metrics_are_the_evaluator_on_the_embeddings(model: torch.nn.Module) -> None:
    dataset = glyphs()
    metrics, embeddings, labels = evaluate_split(
        model, dataset, (1, 2, 100), config(), CPU, None, "test"
    )
    assert "recall@100" not in metrics  # K beyond the split's size is left out
    assert metrics == evaluate(embeddings, labels, (1, 2), seed=0)


def test_diagnostics_are_what_the_method_supplies(model: torch.nn.Module) -> None:
    dataset = glyphs()
    indices = list(range(0, 24, 2))
    run = config(seed=3)
    for name in ("triplet_semihard", "proxy_nca"):
        spec = METHODS.get(name)
        torch.manual_seed(0)
        method = build_method(spec, spec.make_config({}), 6, 8)
        got = compute_diagnostics(model, method, dataset, indices, run, CPU)
        if name == "triplet_semihard":
            assert got == {}
            continue
        embeddings, labels = embed_dataset(model, dataset, run, CPU, EmbeddingProgress(), indices)
        generator = torch.Generator().manual_seed(3 + 104729)  # the run's diagnostic seed
        expected = proxy_diagnostics(
            method.loss, DiagnosticBatch(embeddings, labels, generator, 40)
        )
        assert got == expected and list(got)[-1] == "order_agreement"


def test_retrieval_examples_show_each_querys_nearest_neighbours() -> None:
    dataset = glyphs()
    generator = torch.Generator().manual_seed(1)
    embeddings = torch.randn(24, 4, generator=generator)
    labels = torch.as_tensor(dataset.labels)
    run = config(retrieval_queries=3, retrieval_k=4)
    examples = retrieval_examples(embeddings, labels, dataset, run)
    assert examples is not None
    queries = examples["query_indices"]
    assert len(set(queries.tolist())) == 3
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    for q, row_labels, images in zip(
        queries, examples["neighbor_labels"], examples["neighbor_images"], strict=True
    ):
        sims = normalized @ normalized[q]
        sims[q] = -2
        nearest = torch.argsort(sims, descending=True, stable=True)[:4]
        assert row_labels.tolist() == labels[nearest].tolist()
        for image, j in zip(images, nearest.tolist(), strict=True):
            assert np.array_equal(image, dataset.thumbnail(j))
    assert examples["query_images"].shape == (3, 64, 64, 3)


def test_no_retrieval_examples_without_thumbnails_or_queries() -> None:
    class Plain:
        labels = [0, 0, 1, 1]
        classes = ["a", "b"]

        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            return torch.zeros(1), self.labels[index]

    embeddings, labels = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    assert retrieval_examples(embeddings, labels, Plain(), config()) is None  # type: ignore[arg-type]
    assert retrieval_examples(embeddings, labels, glyphs(), config(retrieval_queries=0)) is None
