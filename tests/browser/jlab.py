"""Drive a real JupyterLab in headless Chromium: start/stop the server, open notebooks, run cells, read outputs.

Playwright is imported lazily so that a plain ``make test`` (which skips the browser tests) does not need it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]  # the checkout under test
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package; Playwright's own browser download is not possible
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# JupyterLab user settings for a quiet, predictable page: every cell stays in the DOM (no virtual
# scrolling), no news or update toasts that fetch from the internet and cover the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}

# Selectors checked on JupyterLab 4.6.
CELL = ".jp-Notebook .jp-Cell"
CODE_CELL = ".jp-Notebook .jp-CodeCell"
OUTPUT = ".jp-Notebook .jp-OutputArea-output"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# A traceback as IPython prints it ("ZeroDivisionError   Traceback (most recent call last)") or a bare
# "SomethingError: message" line (syntax errors); stderr warnings do not match.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.MULTILINE)
KERNEL_STATUS = ".jp-Notebook-ExecutionIndicator"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class JupyterLab:
    """A JupyterLab server started from this venv on 127.0.0.1 with a token, in throwaway folders."""

    root_dir: Path  # folder the server shows (a copy, so committed notebooks are never touched)
    state_dir: Path  # runtime/config/data folders and the server log go here
    env: dict = field(default_factory=dict)  # extra environment for the server and its kernels
    port: int = 0  # chosen in start()
    token: str = ""  # chosen in start()
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "jupyterlab.log"

    def url(self, path: str) -> str:
        """Address of a JupyterLab page, with the token so the browser is logged in."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def start(self, timeout_s: float = 90) -> JupyterLab:
        """Start ``jupyter lab`` and wait until ``/api/status`` answers."""
        self.port, self.token = free_port(), secrets.token_hex(16)
        settings_dir = self.state_dir / "config" / "lab" / "user-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {**os.environ, **self.env,
               "JUPYTER_RUNTIME_DIR": str(self.state_dir / "runtime"),
               "JUPYTER_CONFIG_DIR": str(self.state_dir / "config"),
               "JUPYTER_DATA_DIR": str(self.state_dir / "data"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.state_dir / "workspaces"),
               "IPYTHONDIR": str(self.state_dir / "ipython")}
        cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
        if os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                self.api("status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer /api/status within {timeout_s:.0f} s; see {self.log_path}")

    def api(self, path: str, method: str = "GET") -> dict | list:
        """Call the server's REST API with the token."""
        req = urllib.request.Request(f"{self.base_url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body else {}

    def stop(self) -> None:
        """Stop the server and every process it started (kernels run in their own sessions)."""
        if self.proc is None:
            return
        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for proc in family:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(family, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.proc = None


class Notebook:
    """One notebook open in JupyterLab, driven through the UI like a learner would."""

    def __init__(self, page, lab: JupyterLab, name: str):
        self.page, self.lab, self.name = page, lab, name

    def open(self, timeout_s: float = 120) -> Notebook:
        """Open the notebook and wait until its kernel is idle."""
        # A workspace of its own, so that notebooks opened by earlier tests are not restored next to this one.
        workspace = f"{Path(self.name).stem}-{secrets.token_hex(4)}"
        self.page.goto(self.lab.url(f"lab/workspaces/{workspace}/tree/{self.name}"))
        self.page.wait_for_selector(CELL, timeout=timeout_s * 1000)
        deadline = time.monotonic() + timeout_s
        expected = len(json.loads((self.lab.root_dir / self.name).read_text())["cells"])
        while self.page.locator(CELL).count() != expected:  # every cell in the DOM (windowingMode "none")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {self.page.locator(CELL).count()} of {expected} cells rendered")
            time.sleep(0.25)
        while not self.kernel_connected():  # the toolbar says "idle" before a kernel exists, so ask the server
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no kernel connected after {timeout_s:.0f} s; see {self.lab.log_path}")
            time.sleep(0.25)
        self.wait_idle(timeout_s)
        return self

    def kernel_connected(self) -> bool:
        """True when the server has a kernel for this notebook with the page connected to it."""
        return any(session["path"] == self.name and session["kernel"]["connections"] > 0
                   for session in self.lab.api("sessions"))

    def kernel_status(self) -> str:
        """The notebook toolbar's kernel status: 'idle', 'busy', 'starting', ..."""
        return self.page.locator(KERNEL_STATUS).first.get_attribute("data-status") or ""

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Wait until the kernel is idle and no cell is queued or running (prompt ``[*]``)."""
        deadline = time.monotonic() + timeout_s
        calm_since = None
        while time.monotonic() < deadline:
            busy = self.kernel_status() != "idle" or self.running_cells() > 0
            if busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since > 1.0:  # idle for a second: not between two queued cells
                return
            time.sleep(0.25)
        raise TimeoutError(f"{self.name}: kernel still busy after {timeout_s:.0f} s "
                           f"(status {self.kernel_status()!r}, {self.running_cells()} cells running)")

    def running_cells(self) -> int:
        """Number of code cells whose prompt shows ``[*]`` (queued or running)."""
        prompts = self.page.locator(f"{CODE_CELL} .jp-InputArea-prompt").all_inner_texts()
        return sum("*" in text for text in prompts)

    def run_menu(self, label: str) -> None:
        """Click an entry of the Run menu, e.g. 'Run All Cells'."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")).click()

    def run_all(self, timeout_s: float = 600) -> None:
        """Run > Run All Cells, then wait until the kernel is done."""
        self.run_menu("Run All Cells")
        self.page.wait_for_timeout(500)
        self.wait_idle(timeout_s)

    def select_cell(self, index: int) -> None:
        """Select the cell at ``index`` (0-based, counting every cell) in command mode."""
        cell = self.page.locator(CELL).nth(index)
        cell.locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("Escape")

    def run_through(self, index: int, timeout_s: float = 600) -> None:
        """Run every cell above ``index`` (Run > Run All Above Selected Cell), then that cell (Ctrl+Enter)."""
        self.select_cell(index)
        if index > 0:
            self.run_menu("Run All Above Selected Cell")
            self.page.wait_for_timeout(500)
            self.wait_idle(timeout_s)
        self.run_cell(index, timeout_s)

    def run_cell(self, index: int, timeout_s: float = 600) -> None:
        """Run the cell at ``index`` in place (Ctrl+Enter: no new cell when it is the last one)."""
        self.select_cell(index)
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_timeout(500)
        self.wait_idle(timeout_s)

    def cell(self, index: int):
        """Locator of the cell at ``index``."""
        return self.page.locator(CELL).nth(index)

    def outputs(self, index: int) -> list[str]:
        """Text of every output of the cell at ``index``. Check what is there, never where: libraries may print
        (stderr warnings, progress bars) before or after the line a test looks for."""
        return self.cell(index).locator(".jp-OutputArea-output").all_inner_texts()

    def save(self, timeout_s: float = 30) -> Path:
        """Save through the toolbar's save button and wait until the tab is no longer dirty."""
        self.page.locator('.jp-NotebookPanel-toolbar [data-command="docmanager:save"]').first.click()
        self.page.wait_for_selector(".lm-TabBar-tab.jp-mod-dirty", state="detached", timeout=timeout_s * 1000)
        return self.lab.root_dir / self.name

    def saved_notebook(self, timeout_s: float = 30):
        """Save, then read the .ipynb back whole. A clean tab saves again at once while the server may still be
        writing the previous save, so the file can briefly be empty or half written: read until it parses."""
        import nbformat

        path = self.save(timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return nbformat.reads(path.read_text(), as_version=4)
            except ValueError:  # nbformat's NotJSONError is one
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def shown_tracebacks(self) -> list[str]:
        """Text of every output that shows a Python traceback (JupyterLab 4 renders errors with the stderr mime type)."""
        outputs = self.page.locator(OUTPUT).all_inner_texts()
        return [text for text in outputs if TRACEBACK.search(text)]

    def assert_no_tracebacks(self) -> None:
        """Fail with the end of every traceback the page shows."""
        shown = self.shown_tracebacks()
        if shown:
            ends = ["\n".join(text.strip().splitlines()[-3:]) for text in shown]
            raise AssertionError(f"{self.name} shows {len(shown)} traceback(s):\n" + "\n---\n".join(ends))

    def figures(self, timeout_s: float = 15) -> tuple[int, int]:
        """(plotly figures the kernel sent, figures the page drew), waiting up to ``timeout_s`` for them to draw.

        A figure that fails in the browser shows no traceback and leaves no output element, so the count sent is
        read from the saved notebook. FigureWidgets (widget outputs) are not counted here.
        """
        notebook = self.saved_notebook()
        sent = sum(PLOTLY_MIME in out.get("data", {}) for cell in notebook.cells for out in cell.get("outputs", []))
        drawn = self.page.locator(f"{OUTPUT}.js-plotly-plot").filter(has=self.page.locator("svg.main-svg"))
        deadline = time.monotonic() + timeout_s
        while drawn.count() < sent and time.monotonic() < deadline:
            time.sleep(0.25)
        return sent, drawn.count()

    def saved_errors(self) -> list[str]:
        """Save the notebook, then list its ``error`` outputs as 'ename: evalue' (exact, from the .ipynb)."""
        notebook = self.saved_notebook()
        return [f"cell {i}: {out.ename}: {out.evalue}" for i, cell in enumerate(notebook.cells)
                for out in cell.get("outputs", []) if out.output_type == "error"]

    def saved_stderr(self) -> list[str]:
        """Save the notebook, then list what its cells wrote to stderr as 'cell N: line' (warnings, library logs)."""
        notebook = self.saved_notebook()
        return [f"cell {i}: {line}" for i, cell in enumerate(notebook.cells) for out in cell.get("outputs", [])
                if out.output_type == "stream" and out.name == "stderr" for line in out.text.splitlines() if line]

    def unexecuted_code_cells(self) -> list[int]:
        """Indexes (among code cells) of non-empty code cells with no execution count."""
        missing = []
        for i, cell in enumerate(self.page.locator(CODE_CELL).all()):
            prompt = cell.locator(".jp-InputArea-prompt").inner_text()
            source = cell.locator(".cm-content").inner_text().strip()
            if source and not re.search(r"\[\d+\]", prompt):
                missing.append(i)
        return missing

    def screenshot(self, path: Path, max_height: int = 6000) -> Path:
        """Save a PNG of the whole page, grown tall enough to show the whole notebook (JupyterLab scrolls inside)."""
        size = self.page.viewport_size
        content = self.page.evaluate(
            "() => { const el = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
            " return el ? el.scrollHeight - el.clientHeight : 0; }")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if content > 0:
                self.page.set_viewport_size({"width": size["width"], "height": min(size["height"] + content, max_height)})
                self.page.evaluate("() => document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')"
                                   ".scrollTo(0, 0)")
                self.page.wait_for_timeout(300)
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(size)
        return path

    def screenshot_cell(self, index: int, path: Path) -> Path:
        """Save a PNG of one cell (input and outputs), with the window grown so that all of it shows."""
        cell = self.cell(index)
        size = self.page.viewport_size
        height = cell.bounding_box()["height"]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if height + 150 > size["height"]:
                self.page.set_viewport_size({"width": size["width"], "height": int(height) + 150})
            cell.scroll_into_view_if_needed()
            self.page.wait_for_timeout(300)
            cell.screenshot(path=str(path))
        finally:
            self.page.set_viewport_size(size)
        return path


class ExplorerView:
    """The method explorer as rendered in a cell's output: method dropdown, rank slider, readout, plotly figure.

    Contract with ``labkit.widgets.method_explorer``: the readout holds ``<span class="lk-trainable"
    data-value="N">``, the method is the ipywidgets Dropdown labelled "method", the rank is the IntSlider labelled
    "rank", and the memory figure is a plotly FigureWidget.
    """

    def __init__(self, cell):
        self.cell = cell
        self.page = cell.page

    def wait_rendered(self, timeout_s: float = 60) -> ExplorerView:
        """Wait for the readout and for the memory figure's bars (a FigureWidget first draws empty axes)."""
        self.cell.locator(".lk-trainable").first.wait_for(timeout=timeout_s * 1000)
        figure = self.cell.locator(".js-plotly-plot").first
        figure.wait_for(timeout=timeout_s * 1000)
        figure.scroll_into_view_if_needed()  # plotly may postpone drawing a figure that is out of view
        deadline = time.monotonic() + timeout_s
        while not (self.figure() and self.bar_shapes()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the explorer's memory figure drew no bars within {timeout_s:.0f} s "
                                     f"(traces in the browser: {len(self.figure())})")
            time.sleep(0.25)
        self.page.wait_for_timeout(300)
        return self

    def _control(self, kind: str, label: str):
        label = self.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
        return self.cell.locator(f".{kind}").filter(has=label).first

    def trainable(self) -> int:
        """The trainable-parameter count the readout shows (its ``data-value``)."""
        return int(self.cell.locator(".lk-trainable").first.get_attribute("data-value"))

    def figure(self) -> list[dict]:
        """The plotly figure's traces as the browser holds them (type, name, x, y)."""
        return self.cell.locator(".js-plotly-plot").first.evaluate(
            "el => (el.data ?? []).map(t => ({type: t.type, name: t.name ?? null, x: Array.from(t.x ?? []),"
            " y: Array.from(t.y ?? [])}))")

    def bar_shapes(self) -> list[str]:
        """SVG path of every drawn bar: what the learner actually sees change."""
        return self.cell.locator(".js-plotly-plot .trace.bars .point path").evaluate_all(
            "els => els.map(e => e.getAttribute('d'))")

    def state(self) -> tuple:
        return self.trainable(), repr(self.figure()), tuple(self.bar_shapes())

    def method(self) -> str:
        return self._control("widget-dropdown", "method").locator("select").input_value()

    def slider(self, label: str) -> int:
        """The number a slider's readout shows, e.g. ``slider("batch")``."""
        return int(self._control("widget-slider", label).locator(".widget-readout").inner_text())

    def rank(self) -> int:
        return self.slider("rank")

    def targets(self) -> list[str]:
        """The target layers selected in the "targets" list."""
        return self._control("widget-select-multiple", "targets").locator("select").evaluate(
            "el => Array.from(el.selectedOptions).map(o => o.value)")

    def choose_method(self, name: str) -> None:
        """Pick a method in the dropdown, as a learner would."""
        self._control("widget-dropdown", "method").locator("select").select_option(name)

    def type_rank(self, value: int) -> None:
        """Type a rank into the slider's editable readout and press Enter."""
        readout = self._control("widget-slider", "rank").locator(".widget-readout")
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(str(value))
        self.page.keyboard.press("Enter")

    def nudge_rank(self, key: str = "ArrowRight") -> None:
        """Move the slider handle with the keyboard (one step per key press)."""
        self._control("widget-slider", "rank").locator(".noUi-handle").focus()
        self.page.keyboard.press(key)

    def wait_change(self, before: tuple, timeout_s: float = 20) -> tuple:
        """Wait until readout, figure data and drawn bars all differ from ``before``; return the new state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.state()
            if all(a != b for a, b in zip(now, before)):
                self.page.wait_for_timeout(300)  # let a burst of updates settle
                return self.state()
            time.sleep(0.2)
        now = self.state()
        unchanged = [name for name, a, b in zip(("readout", "figure data", "drawn bars"), now, before) if a == b]
        raise AssertionError(f"after the change the explorer's {', '.join(unchanged)} did not update "
                             f"within {timeout_s:.0f} s (readout {before[0]} -> {now[0]})")
