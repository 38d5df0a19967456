"""The MLflow UI of a finished pipeline run, in headless Chromium.

The UI is a React single-page app: the test drives Chromium over the DevTools protocol,
waits until the page's text shows what a reviewer looks for (the headline metrics on the
parent run, the bias reports among the step runs' artifacts), and saves screenshots to
$GENOPS_TEST_ARTIFACTS (default: the pytest temp folder). The server is the session's
PostgreSQL/S3 tracking server, so the UI reads artifacts through the S3 proxy.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from pipelines.local import RunSummary

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium; Debian's package is installed with apt-get (as root) when missing."""
    path = find_chromium()
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chromium missing and `{' '.join(cmd)}` failed: {done.stderr[-500:]}")
        path = find_chromium()
    if path is None:
        pytest.skip("no chromium on PATH and it could not be installed (apt-get, as root)")
    return path


class Browser:
    """One Chromium page over the DevTools protocol (websocket-client)."""

    def __init__(self, ws_url: str, devtools_port: int) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.devtools_port = devtools_port

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        # Events (Page.*) arrive between the replies: skip them, but not for ever.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
        raise AssertionError(f"{method}: no reply from Chromium within {timeout:.0f} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    TEXT = "document.body ? document.body.innerText : ''"

    def text(self) -> str:
        return str(self.evaluate(Browser.TEXT) or "")

    def wait_for(self, expression: str, what: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(
            f"{what}: not there after {timeout:.0f} s; page:\n{self.text()[:3000]}"
        )

    def wait_until_settled(self, what: str, timeout: float = 30) -> str:
        """Wait until the page is loaded, has no pending image and its text and layout stop
        changing (the same over consecutive polls): late requests and re-layout are done."""
        probe = (
            "document.readyState === 'complete' && "
            "[...document.images].every(i => i.complete) && "
            "JSON.stringify([document.body.innerText, document.body.scrollHeight, "
            "window.scrollY])"
        )
        deadline = time.monotonic() + timeout
        last, same = None, 0
        while time.monotonic() < deadline:
            state = self.evaluate(probe)
            same = same + 1 if state and state == last else 0
            if same >= 2:
                return self.text()
            last = state
            time.sleep(0.25)
        raise AssertionError(f"{what}: still changing after {timeout:.0f} s")

    def open(self, url: str, expect: list[str], timeout: float = 90) -> str:
        """Navigate; wait until the page's visible text holds every string in ``expect``."""
        self.call("Page.navigate", url=url)
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(s)})" for s in expect)
        self.wait_for(f"!!document.body && {checks}", f"{url}: {expect}", timeout)
        # The assistant side panel squeezes the run page into one column: close it.
        self.evaluate(
            "document.body.innerText.includes('MLflow Assistant') && "
            "[...document.querySelectorAll('button[aria-label=Close]')].forEach(b => b.click())"
        )
        return self.wait_until_settled(url)

    def scroll_to_text(self, pattern: str) -> None:
        """Scroll the first leaf element whose text matches the regex ``pattern`` to the top."""
        found = self.evaluate(
            f"""(() => {{
            const re = new RegExp({json.dumps(pattern)});
            const e = [...document.querySelectorAll('body *')].find(
                e => e.childElementCount === 0 && re.test(e.textContent.trim()));
            if (e) e.scrollIntoView({{block: 'start'}});
            return !!e;
        }})()"""
        )
        assert found, pattern
        self.wait_until_settled(f"scrolled to {pattern!r}")

    def click_artifact(self, name: str) -> None:
        """Click the visible node ``name`` in the run's artifact tree (folder or file)."""
        clicked = self.evaluate(
            f"""(() => {{
            const nodes = [...document.querySelectorAll('[data-testid=artifact-tree-node]')]
                .filter(e => e.getAttribute('aria-label') === {json.dumps(name)}
                             && e.getClientRects().length > 0);
            nodes.forEach(e => e.click());
            return nodes.length;
        }})()"""
        )
        assert clicked == 1, f"{clicked} visible artifact nodes named {name}"

    def frame_values(self, expression: str) -> list[Any]:
        """``expression`` evaluated in every out-of-process iframe (MLflow previews HTML in a
        sandboxed one)."""
        url = f"http://127.0.0.1:{self.devtools_port}/json/list"
        with urllib.request.urlopen(url, timeout=10) as response:
            targets = [t for t in json.load(response) if t["type"] == "iframe"]
        values = []
        for target in targets:
            frame = Browser(target["webSocketDebuggerUrl"], self.devtools_port)
            try:
                values.append(frame.evaluate(expression))
            finally:
                frame.close()
        return values

    def frame_texts(self) -> list[str]:
        """The text of every out-of-process iframe."""
        return [str(v or "") for v in self.frame_values(Browser.TEXT)]

    def wait_for_frame_text(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for t in self.frame_texts() if needle in t]
            if found:
                return found[0]
            time.sleep(0.5)
        raise AssertionError(f"no iframe shows {needle!r}; page:\n{self.text()[:3000]}")

    def wait_for_frame_images(self, needle: str, timeout: float = 60) -> int:
        """Wait until the iframe that shows ``needle`` is loaded and done with its images
        (the report's inline charts); their number."""
        probe = (
            f"document.body && document.body.innerText.includes({json.dumps(needle)}) && "
            "document.readyState === 'complete' && "
            "[...document.images].every(i => i.complete) && document.images.length + 1"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [v for v in self.frame_values(probe) if isinstance(v, int) and v > 0]
            if ready:
                return ready[0] - 1
            time.sleep(0.5)
        raise AssertionError(f"the iframe showing {needle!r} did not finish loading")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="genops-chromium-"))
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not active.exists() or not active.read_text().strip():
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        page = Browser(pages[0]["webSocketDebuggerUrl"], port)
        page.call("Page.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
        page.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def step_run_ids(run: RunSummary) -> dict[str, str]:
    mlflow.set_tracking_uri(run.tracking_uri)
    children = mlflow.search_runs(
        [run.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.run_id}'",
        output_format="list",
    )
    return {r.data.tags["genops.step"]: r.info.run_id for r in children}


def test_run_page_shows_the_headline_metrics(
    browser: Browser, server_run: RunSummary, artifacts_dir: Path
) -> None:
    base = f"{server_run.tracking_uri}/#/experiments/{server_run.experiment_id}/runs"
    browser.open(
        f"{base}/{server_run.run_id}",
        expect=["fidelity_column_shapes", "utility_tstr_auc", "Finished"],
    )
    browser.scroll_to_text(r"^Metrics \(\d+\)$")
    text = browser.text()
    shot = browser.screenshot(artifacts_dir / "mlflow-ui-run-metrics.png")
    # The values as logged (the UI prints them in full precision).
    for key in ("fidelity_column_shapes", "utility_tstr_auc"):
        assert str(server_run.metrics[key])[:6] in text, (key, server_run.metrics[key])
    assert server_run.tags["genops.pipeline_version"] in text  # tags are listed too
    assert shot.stat().st_size > 20_000
    print(f"\nscreenshot: {shot}")


def open_report(
    browser: Browser, run: RunSummary, step: str, folder: str, heading: str, shot: Path
) -> str:
    """Open ``folder/report.html`` of a step run in its Artifacts tab; the report's text."""
    steps = step_run_ids(run)
    url = f"{run.tracking_uri}/#/experiments/{run.experiment_id}/runs/{steps[step]}/artifacts"
    browser.open(url, expect=[folder])
    browser.click_artifact(folder)
    browser.wait_for(
        "document.querySelectorAll('[data-testid=artifact-tree-node][aria-label=\"report.html\"]')"
        ".length > 0",
        f"{folder}/report.html in the tree",
    )
    browser.click_artifact("report.html")
    # The HTML preview: the report, fetched through the server's proxy from S3, in an iframe.
    report = browser.wait_for_frame_text(heading)
    browser.wait_for(
        f"document.body.innerText.includes({json.dumps(folder + '/report.html')})",
        "the preview header",
    )
    browser.wait_for_frame_images(heading)  # the report's inline charts
    browser.wait_until_settled("the report preview")
    browser.screenshot(shot)
    print(f"\nscreenshot: {shot}")
    return report


def test_artifacts_tab_renders_the_synthetic_bias_report(
    browser: Browser, server_run: RunSummary, artifacts_dir: Path
) -> None:
    report = open_report(
        browser,
        server_run,
        "evaluate",
        "synthetic_bias",
        "Synthetic-data bias check",
        artifacts_dir / "mlflow-ui-synthetic-bias-report.png",
    )
    assert server_run.tags["genops.synthetic_bias"].upper() in report  # PASSED / FAILED badge
    assert "Group shares" in report


def test_data_bias_check_run_renders_its_report(
    browser: Browser, server_run: RunSummary, artifacts_dir: Path
) -> None:
    report = open_report(
        browser,
        server_run,
        "data-bias-check",
        "data_bias",
        "Data bias check",
        artifacts_dir / "mlflow-ui-data-bias-report.png",
    )
    assert server_run.tags["genops.data_bias"].upper() in report
