from __future__ import annotations

from collections import Counter

import pytest

from dml_bench.errors import ConfigError
from dml_bench.train.sampling import BatchPlan, StepBatchSampler, item_seed

LABELS = [i // 6 for i in range(6 * 30)]  # 30 classes of 6 images


def test_random_batches_cover_each_image_once_per_epoch() -> None:
    plan = BatchPlan(LABELS, batch_size=20, seed=0)
    epoch = [i for step in range(plan.batches_per_epoch) for i in plan.batch(step)]
    assert plan.batches_per_epoch == len(LABELS) // 20
    assert len(set(epoch)) == len(epoch) == plan.batches_per_epoch * 20


def test_m_per_class_batches_hold_m_images_of_each_class() -> None:
    plan = BatchPlan(LABELS, batch_size=16, seed=3, m_per_class=4)
    for step in (0, 1, plan.batches_per_epoch + 2):
        counts = Counter(LABELS[i] for i in plan.batch(step))
        assert sorted(counts.values()) == [4, 4, 4, 4]


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    a = BatchPlan(LABELS, 16, seed=1, m_per_class=4)
    b = BatchPlan(LABELS, 16, seed=1, m_per_class=4)
    steps = [0, 5, 3 * a.batches_per_epoch + 1, 2]  # out of order, across epochs
    assert [a.batch(s) for s in steps] == [b.batch(s) for s in steps]
    assert BatchPlan(LABELS, 16, seed=2, m_per_class=4).batch(0) != a.batch(0)


def test_epochs_differ() -> None:
    plan = BatchPlan(LABELS, 20, seed=0)
    assert plan.batch(0) != plan.batch(plan.batches_per_epoch)


def test_step_sampler_resumes_mid_run_with_the_same_batches_and_seeds() -> None:
    plan = BatchPlan(LABELS, 12, seed=4, m_per_class=3)
    full = list(StepBatchSampler(plan, 0, 10))
    resumed = list(StepBatchSampler(plan, 6, 10))
    assert resumed == full[6:]
    assert full[6][2] == (plan.batch(6)[2], item_seed(4, 6, 2))


def test_plan_rejects_impossible_batches() -> None:
    with pytest.raises(ConfigError, match="fewer than one batch"):
        BatchPlan(LABELS[:10], batch_size=16, seed=0)
    with pytest.raises(ConfigError, match="needs 40 classes"):
        BatchPlan(LABELS, batch_size=160, seed=0, m_per_class=4)


@pytest.mark.parametrize("m_per_class", [None, 4])
def test_each_epoch_is_built_once_however_many_batches_are_asked(
    m_per_class: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking the batches of epoch 1 must not rebuild epoch 0 (and then 1) at every step: with
    m-per-class batches that cost 80 ms per step after the first epoch."""
    labels = [i // 6 for i in range(600)]
    plan = BatchPlan(labels, 24, seed=0, m_per_class=m_per_class)
    built: list[int] = []
    make_epoch = plan._make_epoch
    monkeypatch.setattr(plan, "_make_epoch", lambda epoch: built.append(epoch) or make_epoch(epoch))
    per = plan.batches_per_epoch
    for step in range(3 * per):
        plan.batch(step)
    assert built == [0, 1, 2]
