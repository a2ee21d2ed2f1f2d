"""Study bookkeeping: counts by state, seeds, and the checks that keep a study's budget equal."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from dml_bench.train.plan import ExperimentRequest
from dml_bench.tune.plan import TuneRequest, plan_study
from dml_bench.tune.study import StudyConflictError, check_same, count_trials, sampler_seed


def frozen(
    state: TrialState, value: float | None = None, **attrs: object
) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={},
        distributions={},
        user_attrs=dict(attrs),
    )
    return trial


def test_counts_leave_surplus_and_interrupted_trials_out_of_failures() -> None:
    trials = [
        frozen(TrialState.COMPLETE, 0.3),
        frozen(TrialState.COMPLETE, 0.6),
        frozen(TrialState.PRUNED),
        frozen(TrialState.FAIL),
        frozen(TrialState.FAIL, surplus=True),
        frozen(TrialState.FAIL, interrupted=True),
        frozen(TrialState.RUNNING),
        frozen(TrialState.WAITING),
    ]
    c = count_trials(trials)
    assert (c.complete, c.pruned, c.failed, c.running, c.waiting) == (2, 1, 1, 1, 1)
    assert c.best == 0.6 and c.finished == 3 and c.occupied == 5


def test_sampler_seeds_depend_on_the_seed_and_the_trial_count() -> None:
    seeds = {sampler_seed(s, n) for s in range(3) for n in range(50)}
    assert len(seeds) == 150
    assert sampler_seed(0, 7) == sampler_seed(0, 7)


def plan(tmp_path: Path, methods: tuple[str, ...] = ("nca",), trials: int = 3) -> object:
    return plan_study(
        TuneRequest(
            experiment=ExperimentRequest(methods=methods),
            trials=trials,
            results_dir=tmp_path,
            study="g",
        )
    )


def test_joining_needs_the_same_dataset_methods_budget_and_setup(tmp_path: Path) -> None:
    mine = plan(tmp_path)
    wanted = mine.meta()  # type: ignore[attr-defined]
    check_same(mine, wanted, wanted)  # the same: joins
    for key, value, message in [
        ("dataset", "cub200", "exists for dataset cub200, not hershey"),
        ("methods", ["proxy_nca"], "exists for methods proxy_nca, not nca"),
        ("budget", {**wanted["budget"], "trials": 9}, "exists for budget"),
        ("setup", {"nca": "other"}, "other run options"),
    ]:
        with pytest.raises(StudyConflictError, match=message):
            check_same(mine, {**wanted, key: value}, wanted)
    with pytest.raises(StudyConflictError, match="not made by dml-bench tune"):
        check_same(mine, None, wanted)


def test_default_study_names_follow_the_setup(tmp_path: Path) -> None:
    request = TuneRequest(ExperimentRequest(methods=("nca",)), trials=3, results_dir=tmp_path)
    first = plan_study(request).group
    assert first.startswith("hershey-") and plan_study(request).group == first
    other = TuneRequest(ExperimentRequest(methods=("nca",)), trials=4, results_dir=tmp_path)
    assert plan_study(other).group != first


def test_a_study_made_before_defaults_trials_is_joined_but_the_flag_must_agree(
    tmp_path: Path,
) -> None:
    mine = plan(tmp_path)
    wanted = mine.meta()  # type: ignore[attr-defined]
    older = {k: v for k, v in wanted.items() if k != "defaults_trial"}
    check_same(mine, older, wanted)  # made before defaults trials: joins as it is
    with pytest.raises(StudyConflictError, match="started with --no-defaults-trial"):
        check_same(mine, {**wanted, "defaults_trial": False}, wanted)
    with pytest.raises(StudyConflictError, match="started with a defaults trial"):
        check_same(mine, wanted, {**wanted, "defaults_trial": False})


def test_concurrent_commands_enqueue_the_defaults_once_as_trial_0(tmp_path: Path) -> None:
    """Four commands create or join one group at the same moment (threads released together):
    one creates each study and enqueues its defaults, the others wait for it and join."""
    import threading

    from dml_bench.tune.defaults import TRIAL_ATTR
    from dml_bench.tune.study import create_or_join, load_study

    mine = plan(tmp_path, methods=("nca", "proxy_nca"))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def command() -> None:
        try:
            barrier.wait()
            create_or_join(mine)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=command) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for method in ("nca", "proxy_nca"):
        trials = load_study(mine, method).get_trials()  # type: ignore[arg-type]
        assert [(t.number, t.state.name, t.user_attrs) for t in trials] == [
            (0, "WAITING", {TRIAL_ATTR: True})
        ]
    create_or_join(mine)  # type: ignore[arg-type]  # a later command (resume) adds none
    assert len(load_study(mine, "nca").get_trials()) == 1  # type: ignore[arg-type]


def test_a_creator_stopped_before_the_study_is_set_up_leaves_no_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dml_bench.tune import study as study_module
    from dml_bench.tune.study import create_or_join, load_study

    mine = plan(tmp_path)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "enqueue_defaults", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_or_join(mine)  # type: ignore[arg-type]
    storage = study_module.storage_of(mine)  # type: ignore[arg-type]
    assert optuna.get_all_study_names(storage) == []
    monkeypatch.undo()
    create_or_join(mine)  # type: ignore[arg-type]  # the same command again: created afresh
    assert [t.user_attrs for t in load_study(mine, "nca").get_trials()] == [{"defaults": True}]  # type: ignore[arg-type]
