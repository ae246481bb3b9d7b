"""The notebook as a learner uses it: JupyterLab in a real browser (headless Chromium, driven by Playwright).

Run All must finish with no error, every grader print Tests Passed, the training progress bar render as a widget and
reach 100%, the loss plot, the sample grid and the GIF appear as images, and the explorer's sliders move its faces;
a second run of the training cell, stopped with the toolbar's ■, must say so, leave a loadable checkpoint and let
the next cells run in the same kernel. Needs Debian's chromium (.ci/run installs it) and the playwright package.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from facegan.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("FACEGAN_SCREENSHOTS")  # a folder to keep the screenshot in (docs/ takes it from there)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free port, serving a copy of the notebook with small parameters."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("dlnd_face_generation.ipynb", "helpers.py", "problem_unittests.py"):
        shutil.copy(ROOT / name, work / name)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # JupyterLab 4 renders only the cells in view; every cell's output must be in the page to be counted
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws inline, as for a learner
    env.update(PYTHONPATH=str(ROOT), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), FACEGAN_DATA_DIR="synthetic", FACEGAN_N_EPOCHS="2",
               FACEGAN_BATCH_SIZE="128", FACEGAN_FID_N="0", FACEGAN_CACHE=str(tmp_path / "cache"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
         f"--ServerApp.root_dir={work}"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyter.log", "w"))
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}", work
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def command(page, name: str, wait: bool = True) -> None:
    """A JupyterLab command, as a menu item or a toolbar button runs it; ``wait`` for it to finish (running a cell
    finishes when the cell has run)."""
    page.evaluate("([name, wait]) => { const done = window.jupyterapp.commands.execute(name);"
                  " return wait ? done.then(() => null) : null; }", [name, wait])


def wait_until_idle(page, timeout_s: float) -> None:
    """Until no cell is queued or running ([*]) and the kernel says idle."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            return prompts.length > 0 && !prompts.some(t => t.includes('*'))
                && document.querySelector('.jp-Notebook') !== null;
        }""", timeout=timeout_s * 1000, polling=500)


def outputs_of(page, cell) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-OutputArea").inner_text()


@pytest.mark.slow
def test_the_notebook_in_jupyterlab_in_a_browser(jupyterlab, tmp_path):
    if CHROMIUM is None:  # CI installs it (.ci/run): there a missing browser is a failure, not a skip
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright
    url, work = jupyterlab
    notebook = json.loads((ROOT / "dlnd_face_generation.ipynb").read_text())
    cells = notebook["cells"]
    graded = sum("".join(c["source"]).count("tests.test_") for c in cells if c["cell_type"] == "code")
    training = next(i for i, c in enumerate(cells) if "losses = train(D, G" in "".join(c["source"]))
    explorer = next(i for i, c in enumerate(cells) if "explore(" in "".join(c["source"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/dlnd_face_generation.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook-cell')",
                               timeout=60_000)
        time.sleep(3)  # the kernel starts
        command(page, "notebook:run-all-cells")
        time.sleep(2)
        wait_until_idle(page, 900)

        # Run All: no error anywhere, every grader passed
        command(page, "docmanager:save")
        time.sleep(2)
        saved = json.loads((work / "dlnd_face_generation.ipynb").read_text())
        errors = [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
        outputs = page.locator(".jp-Notebook .jp-OutputArea")
        text = "\n".join(outputs.nth(i).inner_text() for i in range(outputs.count()))
        assert text.count("Tests Passed") == graded

        # the progress bar is a widget, and it reached 100%
        bars = page.locator(".jp-Notebook .jp-Cell").nth(training).locator(".widget-hprogress .progress-bar")
        assert bars.count() >= 1
        assert bars.last.evaluate("bar => bar.style.width") == "100%"
        # the loss plot, the sample grid and the GIF are images on the page, each in its cell
        for marker, kind in (("helpers.plot_losses(losses)", "png"), ("view_samples(-1, samples)", "png"),
                             ("animate_samples(", "gif")):
            cell = next(i for i, c in enumerate(cells) if marker in "".join(c["source"]))
            images = page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-OutputArea-output img")
            assert images.count() >= 1, marker
            assert (images.first.get_attribute("src") or "").startswith(f"data:image/{kind}"), marker

        # the explorer: dragging a slider redraws the faces
        out = page.locator(".jp-Notebook .jp-Cell").nth(explorer)
        sliders = out.locator(".widget-slider .noUi-handle")
        assert sliders.count() >= 3
        picture = out.locator(".widget-image").last
        before = picture.get_attribute("src")
        sliders.first.focus()
        for _ in range(6):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, before]) => el.getAttribute('src') !== before",
                               arg=[picture.element_handle(), before], timeout=30_000)

        out.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "jupyterlab_explorer.png"))
        page.locator(".jp-Notebook .jp-Cell").nth(training).scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "jupyterlab_training.png"))
        for name in ("jupyterlab_explorer.png", "jupyterlab_training.png") if ARTIFACTS else ():
            shutil.copy(tmp_path / name, Path(ARTIFACTS) / name)

        # a second training run, stopped with the toolbar's ■ after a few seconds
        page.locator(".jp-Notebook .jp-Cell").nth(training).locator(".jp-InputPrompt").click()
        command(page, "notebook:insert-cell-above")
        command(page, "notebook:enter-edit-mode")
        page.keyboard.type("n_epochs = 40")
        command(page, "notebook:run-cell-and-select-next")  # the scratch cell; the training cell is next
        command(page, "notebook:run-cell-and-select-next", wait=False)  # the training cell; the grader's next
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-Cell')[{training + 1}]"
            ".querySelector('.jp-InputPrompt').textContent.includes('*')", timeout=60_000)
        # past the first epoch (64 steps), so the stopped run has samples for the grader to look at
        page.wait_for_function(
            f"() => {{ const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[{training + 1}];"
            " const m = cell.innerText.match(/(\\d+)\\/2560/); return m !== null && Number(m[1]) >= 80; }",
            timeout=120_000, polling=250)
        page.locator("jp-button[data-command='notebook:interrupt-kernel'], "
                     "button[data-command='notebook:interrupt-kernel']").first.click()
        wait_until_idle(page, 300)
        stopped = outputs_of(page, training + 1)
        assert "stopped by SIGINT" in stopped, stopped[-2000:]
        state = load_checkpoint(work / "runs" / "notebook" / "checkpoint.pt")
        assert 0 < state["step"] < 40 * 64
        # the next cells run in the same kernel
        command(page, "notebook:run-cell-and-select-next")  # the grader of the training output
        command(page, "notebook:run-cell-and-select-next")
        time.sleep(1)
        wait_until_idle(page, 300)
        assert "Tests Passed" in outputs_of(page, training + 2)  # the grader, on what the stopped run left
        browser.close()
