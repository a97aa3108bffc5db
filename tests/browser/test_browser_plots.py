"""Plotly figures draw in JupyterLab with the renderer ``lk.setup`` picks, and the harness sees what goes wrong.

One generated notebook: ``lk.setup``, a plain ``fig`` and ``fig.show()`` (must draw), then the failures the other
browser tests rely on spotting: stderr output (fine), a figure the browser cannot draw, an exception, and a cell that
Run All must therefore never reach.
"""

import nbformat
import pytest

pytestmark = pytest.mark.browser

NAME = "plots_check.ipynb"  # written into the server's throwaway copy of labs/
CELLS = [
    "import labkit as lk\nsession = lk.setup(seed=0)\nimport plotly.io as pio\nprint('renderer:', pio.renderers.default)",
    "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(x=['weights', 'optimizer'], y=[538, 17]))\nfig",
    "fig.show()",
    "import sys\nprint('a warning on stderr is not an error', file=sys.stderr)",
    "display({'application/vnd.plotly.v1+json': {'data': 5}}, raw=True)  # a figure the browser cannot draw",
    "1 / 0",
    "print('Run All stops before this cell')",
]


def test_plotly_draws_and_the_harness_sees_failures(lab, open_notebook, shot):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    nbformat.write(notebook, lab.root_dir / NAME)
    view = open_notebook(NAME)
    view.run_all(timeout_s=180)
    for index in (1, 2):
        view.cell(index).locator(".js-plotly-plot .trace.bars").first.wait_for(state="attached", timeout=20_000)
    view.screenshot(shot("figures"))

    assert any("renderer: plotly_mimetype" in text for text in view.outputs(0)), view.outputs(0)
    for index in (1, 2):
        bars = view.cell(index).locator(".js-plotly-plot .trace.bars .point path")
        assert bars.count() == 2, f"cell {index}: the figure shows {bars.count()} bars, not 2"
    assert view.figures(timeout_s=3) == (3, 2)  # three sent, the broken one drew nothing
    shown = view.shown_tracebacks()
    assert len(shown) == 1 and "ZeroDivisionError" in shown[0]
    assert view.saved_errors() == ["cell 5: ZeroDivisionError: division by zero"]
    assert view.saved_stderr() == ["cell 3: a warning on stderr is not an error"]  # and no library noise in cell 0
    assert view.unexecuted_code_cells() == [6]
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        view.assert_no_tracebacks()
