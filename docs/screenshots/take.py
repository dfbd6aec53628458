"""Retake the README's screenshots from the real thing: `python docs/screenshots/take.py`.

Runs `pihub demo` (simulated world at 10x speed) for a minute, then photographs the
dashboard with Debian's chromium (via Playwright) and `pihub watch`'s live view (rich's
own SVG export of the same renderable, rasterised by the same chromium).
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console

from pihub.board import Board, Listener, Source
from pihub.config import MqttConfig
from pihub.watch import render_rich

HERE = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_FOR = float(os.environ.get("RUN_FOR", "60"))


def main() -> None:
    demo = subprocess.Popen([sys.executable, "-m", "pihub", "demo", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PIHUB_SIMULATION_SPEED": "10"})
    assert demo.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        banner += demo.stdout.readline()
    url = re.search(r"dashboard:\s+(\S+)", banner)[1]  # type: ignore[index]
    port = int(re.search(r"--port (\d+)", banner)[1])  # type: ignore[index]
    board = Board()
    with Listener(Source(MqttConfig(host="127.0.0.1", port=port)), board) as listener:
        time.sleep(RUN_FOR)  # let the charts and sparklines fill
        console = Console(record=True, width=90, force_terminal=True, color_system="truecolor",
                          file=io.StringIO())
        console.print(render_rich(board, listener))
        svg = HERE / "watch.svg"
        console.save_svg(str(svg), title="pihub watch")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.wait_for_selector('[data-record="cpu"] .value')
            page.wait_for_timeout(1500)
            page.screenshot(path=str(HERE / "dashboard.png"), full_page=True)
            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     device_scale_factor=2)
            phone.goto(url)
            phone.wait_for_selector('[data-record="cpu"] .value')
            phone.wait_for_timeout(1500)
            phone.screenshot(path=str(HERE / "dashboard-phone.png"))
            term = browser.new_page(viewport={"width": 760, "height": 400})
            term.goto(svg.as_uri())
            term.locator("svg").screenshot(path=str(HERE / "watch.png"))
            browser.close()
    finally:
        svg.unlink(missing_ok=True)
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(30)


if __name__ == "__main__":
    main()
