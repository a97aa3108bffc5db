"""Plotly figures render in JupyterLab with the renderer ``lk.setup`` picks: a plain ``fig`` and ``fig.show()``."""

import nbformat
import pytest

pytestmark = pytest.mark.browser

NAME = "plots_check.ipynb"  # written into the server's throwaway copy of labs/
CELLS = [
    "import labkit as lk\nsession = lk.setup(seed=0)\nimport plotly.io as pio\nprint('renderer:', pio.renderers.default)",
    "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(x=['weights', 'optimizer'], y=[538, 17]))\nfig",
    "fig.show()",
]


def test_plotly_figures_render_after_setup(lab, open_notebook, shot):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    nbformat.write(notebook, lab.root_dir / NAME)
    view = open_notebook(NAME)
    view.run_all(timeout_s=180)
    for index in (1, 2):
        view.cell(index).locator(".js-plotly-plot .trace.bars").first.wait_for(state="attached", timeout=20_000)
    view.screenshot(shot("figures"))

    view.assert_no_tracebacks()
    assert "renderer:" in view.cell(0).locator(".jp-OutputArea-output").first.inner_text()
    for index in (1, 2):
        bars = view.cell(index).locator(".js-plotly-plot .trace.bars .point path")
        assert bars.count() == 2, f"cell {index}: the figure shows {bars.count()} bars, not 2"
