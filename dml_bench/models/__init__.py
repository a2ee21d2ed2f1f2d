"""Trunks (a registry) and the embedding network built on them."""

from dml_bench.models.embedder import Embedder, build_embedder, freeze_batch_norm
from dml_bench.models.trunks import TRUNKS, TrunkSpec

__all__ = ["TRUNKS", "Embedder", "TrunkSpec", "build_embedder", "freeze_batch_norm"]
