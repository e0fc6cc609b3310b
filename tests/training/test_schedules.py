"""Learning-rate schedules over the fraction of training."""

import pytest

from se_keras.training.schedules import TrainingSchedule


def test_step_schedule_divides_by_ten_at_the_boundaries():
    schedule = TrainingSchedule(0.6, total_steps=100, kind="step", boundaries=[0.3, 0.6, 0.9])
    values = [float(schedule(s)) for s in (0, 29, 30, 59, 60, 90, 99)]
    assert values == pytest.approx([0.6, 0.6, 0.06, 0.06, 0.006, 0.0006, 0.0006])


def test_cosine_with_warmup():
    schedule = TrainingSchedule(1.0, total_steps=110, warmup_steps=10, kind="cosine")
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(9)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(60)) == pytest.approx(0.5)
    assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)


def test_total_steps_can_be_refitted():
    schedule = TrainingSchedule(1.0, total_steps=1000, kind="step", boundaries=[0.5])
    assert float(schedule(100)) == 1.0
    schedule.set_total_steps(150)  # e.g. a time budget allows only 150 steps
    assert float(schedule(100)) == pytest.approx(0.1)
