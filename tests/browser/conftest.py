"""Browser tests: a real JupyterLab from this venv, driven in Debian's headless Chromium through Playwright.

They run only with ``LABKIT_BROWSER=1`` (``make test-browser`` sets it), so ``make test`` skips them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from jlab import CHROMIUM, CHROMIUM_ARGS, REPO, JupyterLab, Notebook  # tests/browser/jlab.py, on sys.path

ARTIFACTS = REPO / "artifacts" / "browser"  # screenshots (git-ignored)
SERVER_ENV = {"LABKIT_FAST": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def browser_enabled() -> bool:
    """True when the browser tests were asked for (``LABKIT_BROWSER=1``)."""
    return os.environ.get("LABKIT_BROWSER", "").strip() == "1"


def pytest_collection_modifyitems(config, items):
    if browser_enabled():
        return
    skip = pytest.mark.skip(reason="drives JupyterLab in headless Chromium: run `make test-browser` "
                                   "(sets LABKIT_BROWSER=1, needs Debian's chromium and the playwright package)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)  # lets the page fixture screenshot failures
    return report


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts():
    """Screenshots in artifacts/browser/ are those of the latest run only."""
    if browser_enabled():
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> JupyterLab:
    """JupyterLab on 127.0.0.1 (random port, token) showing a throwaway copy of labs/; always stopped."""
    root = tmp_path_factory.mktemp("labs")
    shutil.copytree(REPO / "labs", root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    server = JupyterLab(root_dir=root, state_dir=tmp_path_factory.mktemp("jupyter"), env=SERVER_ENV)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """Headless Debian Chromium with a fresh profile, no sandbox and no background networking."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with "
                    "`apt-get update && apt-get install -y chromium chromium-driver`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test-browser does)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def artifact(request, step: str) -> Path:
    """Screenshot path for this test and step, e.g. artifacts/browser/test_lab00_runs_without_errors-after-run-all.png."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    return ARTIFACTS / f"{name}-{step}.png"


@pytest.fixture
def shot(request):
    """``shot(step)`` is the screenshot path for this test and step (under artifacts/browser/)."""
    return lambda step: artifact(request, step)


@pytest.fixture
def page(browser_context, lab, request):
    """A fresh tab; on failure it leaves a screenshot, and it always shuts the kernels it started down."""
    tab = browser_context.new_page()
    console = []  # browser console errors and warnings: saved next to the screenshot when the test fails
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning")
           else None)
    yield tab
    report = getattr(request.node, "report_call", None)
    try:
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(artifact(request, "failure")), full_page=True)
            artifact(request, "console").with_suffix(".txt").write_text("\n".join(console))
    finally:
        tab.close()
        for kernel in lab.api("kernels"):
            lab.api(f"kernels/{kernel['id']}", method="DELETE")


@pytest.fixture
def open_notebook(page, lab):
    """Open ``name`` (relative to the copied labs/ folder) in JupyterLab and wait for an idle kernel."""
    def _open(name: str) -> Notebook:
        return Notebook(page, lab, name).open()
    return _open
