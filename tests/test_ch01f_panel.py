"""Lab 01f, the reproducibility panel: driven from code, two runs coincide or not as the controls say."""

import pytest

from labkit.chapters.ch01f_hardware.panel import repro_panel
from labkit.core import LabkitError
from labkit.data import load_instructions


def test_panel_runs_twice_and_draws():
    data = load_instructions()["train"].select(range(4))
    panel = repro_panel("tiny-llama", data, num_steps=2, batch_size=2, seq_len=64)
    assert panel.run() == {"identical": True, "max_abs_diff": 0.0}
    assert list(panel.figure.data[0].y) == list(panel.figure.data[1].y)
    assert "identical" in panel.message.value
    panel.seed_b.value = 1
    assert not panel.run()["identical"] and "different" in panel.message.value
    panel.button.click()  # the button runs the same comparison
    assert panel.last["identical"] is False


def test_panel_rejects_one_step():
    with pytest.raises(LabkitError, match="num_steps"):
        repro_panel("tiny-llama", [], num_steps=1)
