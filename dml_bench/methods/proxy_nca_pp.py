"""ProxyNCA++ (Teh, DeVries, Taylor, "ProxyNCA++: Revisiting and Revitalizing Proxy Neighborhood
Component Analysis", ECCV 2020): Proxy-NCA with the changes its authors found to matter.

The loss is the NCA over one proxy per class of ``proxy_nca`` (same code,
:class:`~dml_bench.methods.proxy_nca.StaticProxyNCALoss`), and each change ProxyNCA++ makes over
Proxy-NCA that lives on the loss's side is a config field, so ``--set proxy_nca_pp.FIELD=...``
switches one off and the report shows what it was worth:

* **Proxy assignment probability** (``denominator="all"``): the softmax over *all* proxies,
  ``exp(-d(x, p_y)/T) / sum_p exp(-d(x, p)/T)``, a proper probability of assigning x to its proxy,
  where Proxy-NCA's denominator leaves out the positive (``"negatives"``, the original).
* **Low temperature scaling** (``temperature`` T = 1/9, the paper's): logits are
  ``-d(x, p) / T`` with d the squared Euclidean distance between L2-normalised embedding and proxy.
  T = 1 is the original Proxy-NCA. (The authors' code scales both vectors by sqrt(1/T) = 3 before
  the squared distance, which is the same thing.) dml-bench's ``proxy_nca`` already defaults to
  scale 9 following the reproductions, so against it this change is nil unless its scale is set
  to 1.
* **Fast-moving proxies** (``loss_lr``): the proxies get a learning rate far above the network's,
  because the normalisation makes their gradients small. Default 1e-1 = 100x dml-bench's default
  Adam trunk lr (``_proxies.DEFAULT_PROXY_LR``, measured on the glyphs); the paper sets its own
  value per dataset. ``loss_lr=none`` gives the proxies the network's learning rate (off).
* **Class-balanced sampling** (``m_per_class``): batches of ``m`` images from each of
  ``batch_size / m`` classes; ``m_per_class=none`` gives random batches (off, Proxy-NCA's). The
  default m = 4 is dml-bench's usual value, not a number taken from the paper.

Also fields, at their Proxy-NCA values: ``label_smoothing`` 0 (none; the 0.1 of some Proxy-NCA
reproductions is not among ProxyNCA++'s changes) and ``proxies_per_class`` 1.

Not here, and why. Two of the paper's changes act on the *network*, not the loss: **global max
pooling** (max plus average pooling of the last feature map instead of average alone) and
**layer normalisation** (a non-affine LayerNorm in the embedding head). A method in dml-bench is
a loss, a miner and a batch need (``MethodSpec``); it cannot change the trunk, and doing the
normalisation inside the loss would train one geometry and evaluate another (the evaluator embeds
with the network alone). They would need trunk options of the harness (pooling, an embedding
norm), which it does not have; so they are left out, and ``proxy_nca_pp`` measures the loss-side
changes only. Frozen batch-norm statistics, common in the reproductions, are the run option
``--freeze-bn``, not a method field. Its proxy initialisation (normal, divided by 8) changes
nothing here: proxies are normalised, only their directions matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import (
    DEFAULT_PROXY_LR,
    Denominator,
    check_common_fields,
    proxy_diagnostics,
)
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.proxy_nca import StaticProxyNCALoss
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "temperature": (
        "float",
        1.0 / 32.0,
        1.0,
        True,
        "Teh et al. 2020: T=1/9, studied against higher and lower temperatures; T=1 is the "
        "original Proxy-NCA; log range ours",
    ),
    "loss_lr": (
        "float",
        1e-3,
        1.0,
        True,
        "Teh et al. 2020 (fast-moving proxies): proxy lr far above the network's; "
        "range 1x to 1000x the default trunk lr",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation)."""


@dataclass(frozen=True)
class ProxyNCAPlusPlusConfig(MethodConfig):
    """ProxyNCA++'s loss-side changes over Proxy-NCA, one field each (see the module docstring).

    ``temperature``: T, logits = -||x̂ - p̂||² / T (1/9 the paper's, 1 the original).
    ``denominator``: ``"all"`` (proxy assignment probability) or ``"negatives"`` (the original).
    ``loss_lr``: the proxies' learning rate (fast-moving proxies); ``None`` = the network's.
    ``m_per_class``: class-balanced batches of ``m`` per class; ``None`` = random batches.
    """

    m_per_class: int | None = 4
    loss_lr: float | None = DEFAULT_PROXY_LR
    temperature: float = 1.0 / 9.0
    denominator: Denominator = "all"
    label_smoothing: float = 0.0
    proxies_per_class: int = 1

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(
                f"proxy_nca_pp.temperature must be positive (logits are -d / T), got "
                f"{self.temperature!r}. The paper's is 1/9 (about 0.111)."
            )
        check_common_fields(
            1.0 / self.temperature, self.denominator, self.label_smoothing, self.loss_lr
        )
        if self.proxies_per_class < 1:
            raise ConfigError(
                f"proxy_nca_pp.proxies_per_class must be an integer >= 1, got "
                f"{self.proxies_per_class!r}."
            )


def build_loss(
    num_classes: int, embedding_size: int, config: ProxyNCAPlusPlusConfig
) -> StaticProxyNCALoss:
    return StaticProxyNCALoss(
        num_classes,
        embedding_size,
        scale=1.0 / config.temperature,
        denominator=config.denominator,
        proxies_per_class=config.proxies_per_class,
        label_smoothing=config.label_smoothing,
    )


SPEC: MethodSpec[ProxyNCAPlusPlusConfig] = MethodSpec(
    name="proxy_nca_pp",
    description=(
        "ProxyNCA++ (loss side): softmax over all proxies, temperature 1/9, fast-moving proxies, "
        "class-balanced batches; each a field."
    ),
    reference="Teh, DeVries, Taylor, ProxyNCA++: Revisiting and Revitalizing Proxy Neighborhood "
    "Component Analysis, ECCV 2020",
    config_cls=ProxyNCAPlusPlusConfig,
    build_loss=build_loss,
    build_miner=None,
    family="proxy",
    diagnostics=proxy_diagnostics,
    needs_positives=False,
    search_space=space_from_table(SEARCH_SPACE),
)
