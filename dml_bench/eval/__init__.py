"""Evaluation: exact k-NN, retrieval metrics, k-means NMI, and the one ``evaluate`` front door.

``evaluate(embeddings, labels, ks)`` implements the protocol of docs/protocol.md; the pure metric functions
are exported for tests and for plugin authors who want the same definitions.
"""

from dml_bench.eval.clustering import KMeansResult, clustering_nmi, kmeans
from dml_bench.eval.evaluator import evaluate, retrieval_metrics
from dml_bench.eval.knn import EmbeddingShapeError, nearest_neighbors, topk_lowest_index_first
from dml_bench.eval.metrics import (
    MetricInputError,
    average_precision_at_r_per_query,
    map_at_r,
    num_relevant_per_query,
    precision_at_1,
    precision_at_1_per_query,
    r_precision,
    r_precision_per_query,
    recall_at_k,
)

__all__ = [
    "EmbeddingShapeError",
    "KMeansResult",
    "MetricInputError",
    "average_precision_at_r_per_query",
    "clustering_nmi",
    "evaluate",
    "kmeans",
    "map_at_r",
    "nearest_neighbors",
    "num_relevant_per_query",
    "precision_at_1",
    "precision_at_1_per_query",
    "r_precision",
    "r_precision_per_query",
    "recall_at_k",
    "retrieval_metrics",
    "topk_lowest_index_first",
]
