"""Open a Snakemake HTML report in headless Chromium and check that every figure decodes.

The report is served on 127.0.0.1 next to a small same-origin page that loads it in an
iframe, waits for its React app to render, decodes each embedded result (images through
<img>, tables and text through fetch of their data URI) and writes the outcome as JSON
into its own DOM, which Chromium prints with --dump-dom.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

CHECKER = """<!doctype html><html><body>
<iframe id="report" src="REPORT" style="width:1400px;height:900px"></iframe>
<pre id="outcome">pending</pre>
<script>
async function check() {
  const frame = document.getElementById("report");
  const win = frame.contentWindow;
  const ready = () => win.results && win.document.body && win.document.body.innerText.length > 50;
  for (let i = 0; i < 100 && !ready(); i++) {
    await new Promise(r => setTimeout(r, 100));
  }
  const outcome = {
    rendered_text: win.document.body ? win.document.body.innerText.slice(0, 2000) : "",
    results: {},
  };
  const results = win.results || {};
  for (const [path, res] of Object.entries(results)) {
    const entry = {mime: res.mime_type, category: res.category || null, ok: false};
    try {
      if ((res.mime_type || "").startsWith("image/")) {
        const img = new Image();
        await new Promise((resolve, reject) => {
          img.onload = resolve; img.onerror = reject; img.src = res.data_uri;
        });
        entry.ok = img.naturalWidth > 0 && img.naturalHeight > 0;
        entry.width = img.naturalWidth; entry.height = img.naturalHeight;
      } else {
        const text = await (await fetch(res.data_uri)).text();
        entry.ok = text.length > 0; entry.bytes = text.length;
      }
    } catch (err) { entry.error = String(err); }
    outcome.results[path] = entry;
  }
  document.getElementById("outcome").textContent = JSON.stringify(outcome);
}
window.addEventListener("load", check);
</script></body></html>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Server:
    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def check_report(report: Path, timeout: int = 120) -> dict:
    """Return {"rendered_text": ..., "results": {path: {"mime", "ok", ...}}} as seen by Chromium."""
    report = Path(report).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(report, root / "report.html")
        (root / "check.html").write_text(CHECKER.replace("REPORT", "report.html"))
        with _Server(root) as url, tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [
                    chromium(),
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=60000",
                    "--dump-dom",
                    f"{url}/check.html",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
    match = re.search(r'<pre id="outcome">(.*?)</pre>', proc.stdout, re.S)
    if not match or match.group(1) == "pending":
        raise AssertionError(
            f"the report did not finish loading in Chromium:\n{proc.stderr[-2000:]}"
        )
    import html

    return json.loads(html.unescape(match.group(1)))


def screenshot(report: Path, output: Path, size: str = "1400,1000") -> Path:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                "--virtual-time-budget=10000",
                f"--screenshot={output}",
                Path(report).resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return output
