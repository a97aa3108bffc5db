"""The method explorer in JupyterLab, driven like a learner: pick a method, move the rank, watch readout and figure.

The numbers on screen must be the kit's own: ``meters.analytic_trainable_params`` for the readout, and
``plots.memory_breakdown(meters.predict_memory(...))`` for the memory figure, both computed here in the test process.

Lab 01a contract: the explorer's cell in ``labs/01a_paradigms.ipynb`` carries the cell tag ``method-explorer`` (or a
``# method-explorer`` comment line) and displays ``lk.widgets.method_explorer("smollm2-135m")`` with its default
controls for method, rank and base (method "lora", rank 8, base "none"); targets, batch and seq_len are read
from the page.
"""

from __future__ import annotations

import numbers
import warnings

import nbformat
import pytest
from jlab import REPO, ExplorerView

pytestmark = pytest.mark.browser

LAB01 = "01a_paradigms.ipynb"
MARKER = "method-explorer"
GENERATED = "explorer_check.ipynb"  # written into the server's throwaway copy of labs/, never into the repo
GENERATED_CELLS = [
    "import labkit as lk\nsession = lk.setup(seed=0)",
    "# method-explorer\nexplorer = lk.widgets.method_explorer(\"smollm2-135m\")\nexplorer",
]
# LoRA r=8 on SmolLM2-135M (30 layers, hidden 576, 3 key/value heads of 64, MLP 1536), by target layers:
LORA_R8 = {
    ("q_proj", "v_proj"): 30 * 8 * ((576 + 576) + (576 + 192)),  # 460,800
    ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"):
        30 * 8 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536)),  # 2,442,240
}


def marker_cell(path) -> int:
    """Index of the cell tagged ``method-explorer`` (or holding a ``# method-explorer`` line)."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        lines = [line.strip() for line in cell.source.splitlines()]
        if cell.cell_type == "code" and (MARKER in cell.metadata.get("tags", []) or f"# {MARKER}" in lines):
            return i
    raise AssertionError(f"{path.name} has no code cell tagged {MARKER!r} (or with a '# {MARKER}' line): "
                         "tag the cell that displays lk.widgets.method_explorer(...)")


@pytest.fixture(params=["generated", "lab01"])
def explorer_notebook(request, lab) -> tuple[str, int]:
    """(notebook, cell index): a two-cell notebook made here, and lab 01a once it exists."""
    if request.param == "lab01":
        if not (REPO / "labs" / LAB01).exists():
            pytest.skip(f"labs/{LAB01} is not written yet; the generated notebook covers the explorer meanwhile")
        return LAB01, marker_cell(lab.root_dir / LAB01)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in GENERATED_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    nbformat.write(notebook, lab.root_dir / GENERATED)
    return GENERATED, 1


@pytest.fixture(scope="module")
def kit():
    """What the kit computes for a setting: (trainable parameters, memory-figure traces)."""
    from transformers import AutoConfig

    from labkit import meters, plots
    from labkit.models import prepare_offline_model

    config = AutoConfig.from_pretrained(prepare_offline_model())

    def compute(method: str, rank: int, targets: list[str], batch_size: int, seq_len: int) -> tuple[int, list[dict]]:
        kwargs = {"rank": rank, "target_modules": targets} if method in ("lora", "dora") else {}
        trainable = meters.analytic_trainable_params(config, method, **kwargs)
        estimate = meters.predict_memory(config, method, batch_size=batch_size, seq_len=seq_len, quantization=None,
                                         **kwargs)
        return trainable, traces(plots.memory_breakdown(estimate))
    return compute


def traces(figure) -> list[dict]:
    """Name, x and y of every trace of an in-process plotly figure, as plain lists."""
    return [{"name": t.name, "x": [] if t.x is None else list(t.x), "y": [] if t.y is None else list(t.y)}
            for t in figure.data]


def assert_figure_matches(shown: list[dict], expected: list[dict]) -> None:
    """The browser's plotly traces hold the kit's numbers (same traces, same categories, same values)."""
    assert [t["name"] for t in shown] == [t["name"] for t in expected]
    for got, want in zip(shown, expected):
        for axis in ("x", "y"):
            if all(isinstance(v, numbers.Real) for v in want[axis]):
                assert got[axis] == pytest.approx([float(v) for v in want[axis]], rel=1e-6), \
                    f"trace {got['name']!r} shows other {axis} values than the kit computes"
            else:
                assert got[axis] == [str(v) for v in want[axis]]


def render(notebook, index: int, shot) -> ExplorerView:
    """The explorer once its figure has drawn; if it stays empty, leave a screenshot and run the cell once more.

    Under heavy load the memory FigureWidget sometimes never receives its traces in the browser (seen on a busy
    2-core machine); a learner would re-run the cell, and so does the test, with a warning.
    """
    try:
        return ExplorerView(notebook.cell(index)).wait_rendered(timeout_s=30)
    except AssertionError as err:
        notebook.screenshot_cell(index, shot("empty-figure"))
        warnings.warn(f"{err}; ran the explorer cell once more", stacklevel=2)
        notebook.run_cell(index, timeout_s=120)
        return ExplorerView(notebook.cell(index)).wait_rendered(timeout_s=60)


def test_method_explorer_follows_the_controls(explorer_notebook, open_notebook, kit, shot):
    name, index = explorer_notebook
    notebook = open_notebook(name)
    notebook.run_through(index, timeout_s=300)
    notebook.assert_no_tracebacks()
    explorer = render(notebook, index, shot)
    notebook.screenshot(shot("before"))
    notebook.screenshot_cell(index, shot("before-explorer"))

    targets, shape = explorer.targets(), (explorer.slider("batch"), explorer.slider("seq_len"))
    assert (explorer.method(), explorer.rank()) == ("lora", 8)
    assert tuple(sorted(targets)) in LORA_R8, f"unexpected default targets {targets}: update LORA_R8"
    r8 = LORA_R8[tuple(sorted(targets))]
    assert explorer.trainable() == r8 == kit("lora", 8, targets, *shape)[0]
    assert_figure_matches(explorer.figure(), kit("lora", 8, targets, *shape)[1])
    first = explorer.state()

    explorer.type_rank(64)  # typed into the slider's readout
    explorer.wait_change(first)
    assert explorer.rank() == 64
    assert explorer.trainable() == 8 * r8 == kit("lora", 64, targets, *shape)[0]
    assert_figure_matches(explorer.figure(), kit("lora", 64, targets, *shape)[1])

    before = explorer.state()
    explorer.nudge_rank("ArrowRight")  # keyboard on the slider handle: one step up
    explorer.wait_change(before)
    assert explorer.rank() == 65
    assert explorer.trainable() == kit("lora", 65, targets, *shape)[0]

    before = explorer.state()
    explorer.choose_method("dora")  # the dropdown, as a learner picks it
    explorer.wait_change(before)
    assert explorer.trainable() == kit("dora", 65, targets, *shape)[0]
    assert_figure_matches(explorer.figure(), kit("dora", 65, targets, *shape)[1])

    before = explorer.state()
    explorer.choose_method("full")
    explorer.wait_change(before)
    trainable, figure = kit("full", 65, targets, *shape)
    assert explorer.trainable() == trainable == 134_515_008
    assert_figure_matches(explorer.figure(), figure)
    assert explorer.bar_shapes() != first[2], "the drawn bars look the same after switching to full fine-tuning"

    notebook.screenshot(shot("after"))
    notebook.screenshot_cell(index, shot("after-explorer"))
    notebook.assert_no_tracebacks()
