"""The resolved configuration of one run, and the presets that fill it.

A :class:`RunConfig` holds every value that can change a result, the method's and the dataset's
configs included, so that ``config.json`` in a run folder says exactly what ran. Its
:meth:`RunConfig.identity` (a hash of the result-relevant fields) names the run folder, which is how
re-running a command finds an unfinished run to resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from dml_bench.config import config_hash, to_dict
from dml_bench.errors import ConfigError

Optimizer = Literal["adam", "adamw", "rmsprop", "sgd"]

# Fields that change how a run is executed but not what it computes; left out of the identity.
EXECUTION_FIELDS = frozenset(
    {
        "device",
        "num_workers",
        "data_root",
        "download",
        "prepared",  # a prepared cache gives the very same pixels (dml_bench.data.prepared)
        "checkpoint_every",
        "eval_batch_size",
        "keep",  # what is kept after the run, not what it computes
        "log",  # where the run is also logged (dml_bench.track)
        # labels, not values: a sweep's default point is the same run as the plain method
        "variant",
        "swept_fields",
        "preset",
        "notes",
    }
)


@dataclass(frozen=True)
class RunConfig:
    """One training run: a method on a dataset with one seed.

    Defaults are those of the embedded ``hershey`` dataset on a laptop CPU; ``--preset nofuss`` and
    ``--preset mlrc`` give the paper's and the Reality Check's set-ups for the photo datasets.
    """

    method: str = "proxy_nca"
    dataset: str = "hershey"
    seed: int = 0
    method_config: Any = None
    dataset_config: Any = None
    variant: str = ""
    #: the method fields the request set to a value other than their default (the variant's label
    #: is made from them), sorted
    swept_fields: tuple[str, ...] = ()
    # where tuned parameters come from (dml_bench.tune.record.TuningSource); None: untuned.
    # Part of the identity, so a tuned run never shares a run id with an untuned one.
    tuning: Any = None
    #: the hash of the method's source (dml_bench.methods.code), filled in by planning: part of the
    #: identity, so editing a method's code makes its runs new runs ("" for configs built by hand)
    method_source_hash: str = ""
    # model
    trunk: str = "auto"
    pretrained: bool = True
    freeze_bn: bool = False
    embedding_size: int = 64
    # optimisation
    steps: int = 600
    batch_size: int = 64
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    lr_decay_epochs: float = 1.0
    amp: bool = True
    # data
    resize: int = 256
    crop: int = 227
    val_classes: float = 0.0
    # evaluation and diagnostics
    eval_every: int = 100
    diagnostics: bool = True
    diagnostic_classes: int = 32
    diagnostic_per_class: int = 4
    diagnostic_triplets: int = 2000
    retrieval_queries: int = 6
    retrieval_k: int = 5
    # execution (not part of the identity)
    device: str = "auto"
    num_workers: int = 0
    data_root: str | None = None
    download: bool = False
    prepared: bool = True  # read photos from a matching `dml-bench prepare` cache if one exists
    checkpoint_every: int = 100
    eval_batch_size: int = 512
    keep: bool = True  # keep the model weights and test embeddings (dml_bench.store.models)
    log: tuple[str, ...] = ()  # also log to "tensorboard" and/or "mlflow" (dml_bench.track)
    preset: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_positive(
            self,
            (
                "steps",
                "batch_size",
                "embedding_size",
                "eval_every",
                "checkpoint_every",
                "eval_batch_size",
                "resize",
                "crop",
            ),
        )
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")
        if not 0.0 <= self.val_classes < 1.0:
            raise ConfigError(
                f"val_classes is the fraction of train classes held out for validation and must be "
                f"in [0, 1), got {self.val_classes}."
            )
        if self.crop > self.resize:
            raise ConfigError(f"crop ({self.crop}) must not exceed resize ({self.resize}).")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}.")
        check_loggers(self.log)

    def identity(self) -> str:
        """A short hash of everything that changes the result (execution fields excluded), the
        method's source hash included. An untuned run (``tuning`` None) and a config without a
        source hash (built by hand, not planned) hash as before those fields existed."""
        data = {k: v for k, v in to_dict(self).items() if k not in EXECUTION_FIELDS}
        if data.get("tuning") is None:
            data.pop("tuning", None)
        if not self.method_source_hash:
            del data["method_source_hash"]
        return config_hash(data)

    def run_id(self) -> str:
        return f"{self.dataset}-{self.method}-seed{self.seed}-{self.identity()}"


#: The experiment trackers ``--log`` accepts (dml_bench.track).
LOGGERS = ("tensorboard", "mlflow")


def check_loggers(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(
                f"Unknown logger {name!r} in --log. Valid loggers are: {', '.join(LOGGERS)} "
                "(comma-separated, e.g. --log tensorboard,mlflow)."
            )


def check_positive(config: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value}.")


# Presets: values a preset sets unless an explicit flag overrides them. Method overrides go under
# "methods" (applied to every method whose config has the field).
PRESETS: dict[str, dict[str, Any]] = {
    # Paper Sec. 5: BN-Inception pretrained on ImageNet, 64-d embedding, batch 32, RMSprop; images
    # resized to 256 with a random 227 crop; one proxy per class. We read "RMSprop with 0.94 decay" as
    # the Inception recipe: learning rate multiplied by 0.94 every epoch (stated in the run record).
    "nofuss": {
        "run": {
            "trunk": "googlenet",
            "pretrained": True,
            "embedding_size": 64,
            "batch_size": 32,
            "optimizer": "rmsprop",
            "lr": 1e-4,
            "lr_decay": 0.94,
            "lr_decay_epochs": 1.0,
            "resize": 256,
            "crop": 227,
            "steps": 20000,
            "eval_every": 1000,
        },
        "methods": {"proxies_per_class": 1},
    },
    # Musgrave et al. 2020 (A Metric Learning Reality Check), Sec. 4: 128-d embeddings, batch 32 with
    # 4 samples per class, RMSprop, batch norm frozen.
    "mlrc": {
        "run": {
            "trunk": "googlenet",
            "pretrained": True,
            "freeze_bn": True,
            "embedding_size": 128,
            "batch_size": 32,
            "optimizer": "rmsprop",
            "lr": 1e-6,
            "resize": 256,
            "crop": 227,
            "steps": 20000,
            "eval_every": 1000,
        },
        "methods": {"m_per_class": 4},
    },
}


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(
            f"Unknown preset {name!r}. Valid presets are: {', '.join(sorted(PRESETS))}."
        )
    return PRESETS[name]


def run_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


#: Fields that say which run this is rather than how it ran: the identity, the method's and the
#: dataset's own configs.
IDENTITY_FIELDS = frozenset(
    {"method", "dataset", "seed", "method_config", "dataset_config", "method_source_hash"}
)


def setup_field_names() -> list[str]:
    """The run options that can change what a run computes (its ``setup`` in config.json)."""
    # ``tuning`` joins a tuned run's setup as a label (train/recording.py), never as a dict
    return sorted(set(run_field_names()) - EXECUTION_FIELDS - IDENTITY_FIELDS - {"tuning"})


def changed_options(config: RunConfig) -> dict[str, Any]:
    """The run options (execution options included) whose value differs from the default."""
    default = RunConfig()
    skip = IDENTITY_FIELDS | {"variant", "swept_fields", "preset", "notes"}
    values, defaults = to_dict(config), to_dict(default)
    return {k: values[k] for k in run_field_names() if k not in skip and values[k] != defaults[k]}
