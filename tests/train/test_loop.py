from __future__ import annotations

import csv
import importlib.metadata
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dml_bench.errors import RunFailedError
from dml_bench.methods import METHODS, build_method
from dml_bench.models import build_embedder
from dml_bench.train import RunConfig
from dml_bench.train.loop import build_optimizer, check_finite, set_learning_rates

from .conftest import run_tiny


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def proxy_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    results = tmp_path_factory.mktemp("results")
    (outcome,) = run_tiny(results, data_root, ("proxy_nca",))
    assert outcome.status == "completed", outcome.reason
    return results / outcome.run_id


def test_curve_starts_untrained_and_has_a_row_per_evaluation(proxy_run: Path) -> None:
    rows = read_rows(proxy_run)
    assert [int(r["step"]) for r in rows] == [0, 3, 6]
    assert rows[0]["train_loss"] == "" and float(rows[1]["train_loss"]) > 0
    elapsed = [float(r["elapsed_s"]) for r in rows]
    assert elapsed[0] == 0.0 and elapsed == sorted(elapsed)
    for r in rows:
        assert 0.0 <= float(r["recall@1"]) <= float(r["recall@2"]) <= float(r["recall@8"]) <= 1.0


def test_each_evaluation_records_cpu_time_and_machine_load(proxy_run: Path) -> None:
    """Wall-clock seconds depend on the machine's load; each row says what the run had: process
    CPU seconds over the training time and the load average per core (a1469a8 recorded
    neither, so a seconds comparison under load could not be told from one on an idle machine)."""
    rows = read_rows(proxy_run)
    cpu = [float(r["cpu_s"]) for r in rows]
    assert cpu[0] == 0.0 and cpu == sorted(cpu) and cpu[-1] > 0.0
    load = [float(r["load1"]) for r in rows]
    expected = os.getloadavg()[0] / (os.cpu_count() or 1)
    assert all(x >= 0.0 for x in load) and abs(load[-1] - expected) < 2.0


def test_proxy_runs_record_the_rq1_and_rq3_diagnostics(proxy_run: Path) -> None:
    row = read_rows(proxy_run)[-1]
    for key in ("proxy_nca_loss", "data_nca_loss", "eps_mean", "eps_max", "order_agreement"):
        assert math.isfinite(float(row[key])), key
    assert float(row["eps_mean"]) <= float(row["eps_max"])


@pytest.mark.parametrize("proxy_init", ["first_batch", "random"])
def test_placeholder_proxies_log_no_diagnostics(
    tmp_path: Path, data_root: Path, proxy_init: str
) -> None:
    """Dynamic assignment with ``first_batch`` proxies sets them at its first training step; at
    step 0 its proxies are placeholders it never trains with, so that row logs no RQ1/RQ3
    diagnostics (the report's "first row" then is the method's own proxies'); ``random`` proxies
    are the trained ones from the start and log them at step 0 too."""
    from dml_bench.train import run_experiment
    from dml_bench.train.plan import ExperimentRequest, plan_runs

    from .conftest import tiny_request

    request = tiny_request(data_root, ("proxy_nca_dynamic",))
    request = ExperimentRequest(
        methods=request.methods,
        run_params=request.run_params,
        method_params={"proxy_nca_dynamic": {"proxy_init": [proxy_init]}},
        dataset_params=request.dataset_params,
    )
    (outcome,) = run_experiment(plan_runs(request), tmp_path)
    assert outcome.status == "completed", outcome.reason
    rows = read_rows(tmp_path / outcome.run_id)
    logged = [r["order_agreement"] != "" for r in rows]
    assert logged == [proxy_init == "random", True, True]
    assert all(math.isfinite(float(r["eps_max"])) for r in rows[1:])


def test_record_is_complete_and_says_what_ran(proxy_run: Path) -> None:
    config = json.loads((proxy_run / "config.json").read_text())
    assert config["method"] == "proxy_nca" and config["sampler"] == "random"
    assert config["method_config"]["scale"] == METHODS.get("proxy_nca").default_config().scale
    assert config["num_train_classes"] == config["num_test_classes"] == 12
    summary = json.loads((proxy_run / "summary.json").read_text())
    assert summary["final"]["recall@1"] == float(read_rows(proxy_run)[-1]["recall@1"])
    assert json.loads((proxy_run / "status.json").read_text())["status"] == "completed"
    assert not (proxy_run / "checkpoint.pt").exists()
    env = json.loads((proxy_run / "env.json").read_text())
    assert env["packages"]["torch"] == importlib.metadata.version("torch")
    assert env["device"] == "cpu" and env["method_origin"]["distribution"] == "built-in"


def test_retrieval_examples_are_consistent(proxy_run: Path) -> None:
    data = np.load(proxy_run / "retrievals.npz")
    q, k = data["neighbor_labels"].shape
    assert data["query_images"].shape[0] == q and data["neighbor_images"].shape[:2] == (q, k)
    assert data["query_images"].dtype == np.uint8
    # each retrieved item's class name, read without pickle: the glyph's font:character
    names = data["neighbor_classes"]
    assert names.shape == (q, k) and data["query_classes"].shape == (q,)
    assert all(":" in str(n) for n in names.reshape(-1))
    same = data["neighbor_labels"] == data["query_labels"][:, None]
    assert ((names == data["query_classes"][:, None]) == same).all()


def test_pair_methods_use_m_per_class_batches(tmp_path: Path, data_root: Path) -> None:
    (outcome,) = run_tiny(tmp_path, data_root, ("triplet_semihard",), diagnostics=False)
    config = json.loads((tmp_path / outcome.run_id / "config.json").read_text())
    assert config["sampler"] == "m_per_class:4"
    assert "proxy_nca_loss" not in read_rows(tmp_path / outcome.run_id)[-1]


def test_validation_classes_are_scored_separately(tmp_path: Path, data_root: Path) -> None:
    (outcome,) = run_tiny(tmp_path, data_root, ("proxy_nca",), val_classes=0.25)
    config = json.loads((tmp_path / outcome.run_id / "config.json").read_text())
    assert config["num_val_classes"] == 3 and config["num_train_classes"] == 9
    assert "val_recall@1" in read_rows(tmp_path / outcome.run_id)[-1]


def test_loss_parameters_get_their_own_group_and_learning_rate() -> None:
    spec = METHODS.get("proxy_nca")
    method = build_method(spec, spec.make_config({"loss_lr": 0.05}), 10, 8)
    model = build_embedder("small_cnn", 1, 8, pretrained=False)
    optimizer = build_optimizer(model, method, RunConfig(lr=0.001))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["loss"]["lr"] == 0.05 and groups["model"]["lr"] == 0.001
    assert groups["loss"]["params"][0] is method.loss.proxies


def test_learning_rate_decays_per_epoch() -> None:
    spec = METHODS.get("nca")
    method = build_method(spec, spec.default_config(), 10, 8)
    optimizer = build_optimizer(
        build_embedder("small_cnn", 1, 8, False),
        method,
        RunConfig(lr=1.0, lr_decay=0.5, lr_decay_epochs=2.0),
    )
    set_learning_rates(optimizer, RunConfig(lr=1.0, lr_decay=0.5, lr_decay_epochs=2.0), epoch=4.5)
    assert optimizer.param_groups[0]["lr"] == 0.25


def test_non_finite_losses_name_the_step_and_values() -> None:
    check_finite(torch.tensor([1.0, 2.0]), 10, "run")
    with pytest.raises(RunFailedError, match=r"step 12 .*steps 11-13: 1, nan, 3"):
        check_finite(torch.tensor([1.0, float("nan"), 3.0]), 11, "run")


def test_step_zero_metrics_are_computed_once_per_network_and_equal_a_lone_run(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dml_bench.train import loop

    calls: list[str] = []
    evaluate_split = loop.evaluate_split

    def counting(*args: Any) -> Any:
        calls.append(args[6])  # the split's name
        return evaluate_split(*args)

    monkeypatch.setattr(loop, "evaluate_split", counting)
    methods = ("proxy_nca", "triplet_semihard")
    outcomes = run_tiny(tmp_path / "both", data_root, methods, val_classes=0.25)
    assert [o.status for o in outcomes] == ["completed", "completed"]
    # 3 evaluations (steps 0, 3, 6) x 2 splits x 2 runs, less the second run's step 0 (2 splits)
    assert sorted(calls) == ["test"] * 5 + ["val"] * 5
    monkeypatch.setattr(loop, "evaluate_split", evaluate_split)
    (alone,) = run_tiny(tmp_path / "alone", data_root, methods[1:], val_classes=0.25)
    shared = read_rows(tmp_path / "both" / outcomes[1].run_id)
    lone = read_rows(tmp_path / "alone" / alone.run_id)
    metric_columns = [c for c in lone[0] if "recall" in c or "nmi" in c or "map" in c]
    assert "val_recall@1" in metric_columns and "nmi" in metric_columns
    for shared_row, lone_row in zip(shared, lone, strict=True):
        assert {c: shared_row[c] for c in metric_columns} == {
            c: lone_row[c] for c in metric_columns
        }
    runs = ((tmp_path / "both", outcomes[1]), (tmp_path / "alone", alone))
    retrievals = [np.load(d / o.run_id / "retrievals.npz") for d, o in runs]
    assert np.array_equal(retrievals[0]["neighbor_labels"], retrievals[1]["neighbor_labels"])


def test_untrained_key_changes_with_any_weight_and_with_the_split() -> None:
    from dml_bench.train.evaluation import untrained_key

    torch.manual_seed(0)
    model = build_embedder("small_cnn", 1, 8, pretrained=False)
    config, cpu = RunConfig(), torch.device("cpu")
    key = untrained_key(model, config, cpu, "test")
    copy = build_embedder("small_cnn", 1, 8, pretrained=False)
    copy.load_state_dict(model.state_dict())
    assert untrained_key(copy.to(memory_format=torch.channels_last), config, cpu, "test") == key
    assert untrained_key(model, config, cpu, "val") != key
    assert untrained_key(model, RunConfig(seed=1), cpu, "test") != key
    with torch.no_grad():
        next(iter(copy.parameters())).view(-1)[0] += 1e-6
    assert untrained_key(copy, config, cpu, "test") != key
