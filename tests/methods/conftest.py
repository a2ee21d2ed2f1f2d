"""Deterministic tests: proxies are initialised from the global torch RNG, as in the loop."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_global_torch_rng() -> None:
    torch.manual_seed(0)
