"""How spread a proxy assignment is (RQ5): does dynamic assignment collapse classes onto proxies?

Dynamic assignment (p(x) = the nearest proxy, no class ownership) can put points of many classes
on one proxy; then the proxy loss cannot tell those classes apart. Two numbers on the diagnostic
batch show it at every evaluation:

* ``proxies_in_use``: how many distinct proxies the batch's points are assigned to;
* ``shared_proxy_pairs``: the share of different-class pairs (x, z), x != z, whose points have
  the same proxy (0: every class on its own proxies, as static assignment guarantees; 1: one
  proxy for everything).
"""

from __future__ import annotations

import math

import torch


def collapse_columns(assigned: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``proxies_in_use`` and ``shared_proxy_pairs`` for proxy indices ``assigned`` (B,)."""
    different = labels.unsqueeze(0) != labels.unsqueeze(1)
    shared = assigned.unsqueeze(0) == assigned.unsqueeze(1)
    pairs = int(different.sum())
    return {
        "proxies_in_use": float(len(assigned.unique())),
        "shared_proxy_pairs": float((shared & different).sum()) / pairs if pairs else math.nan,
    }
