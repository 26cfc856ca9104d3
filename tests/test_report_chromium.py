"""report.html: self-contained, renders in headless Chromium, makes no network request."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import assert_contains

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian 'chromium' not installed (apt-get install chromium); headless render not run",
)
YELLOW = np.array([255, 255, 0])


def test_html_has_no_external_reference(analyst_outputs):
    packet = analyst_outputs.products.evidence
    html = packet.report.read_text("utf-8")
    assert not re.search(r"(?i)https?:|//[a-z0-9]|<script|<link|@import|url\(", html)
    sources = re.findall(r'src="([^"]+)"', html)
    det = analyst_outputs.products.detections
    assert len(sources) == 1 + 2 * len(det)  # overview + two chips per detection
    for src in sources:
        assert (packet.folder / src).is_file(), src
    assert html.count('<tr><td class="num">') == len(det)
    for det_id in det["id"]:
        assert f'id="{det_id}"' in html


def run_chromium(html: Path, tmp: Path) -> tuple[Path, list[str]]:
    """Screenshot ``html``; return the PNG and the URLs the page itself requested."""
    shot, netlog = tmp / "shot.png", tmp / "net.json"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}",
        "--window-size=1200,2600",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    log = json.loads(netlog.read_text())
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page_urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if kinds[event["type"]] == "URL_REQUEST_START_JOB" and "url" in params:
            # Chromium's own background services have no page origin; the page's do.
            if params.get("initiator") != "not an origin":
                page_urls.append(params["url"])
    external = [u for u in page_urls if not u.startswith(("file:", "data:"))]
    return shot, external


@pytest.mark.slow
@needs_chromium
def test_report_renders_offline_with_table_and_chips(analyst_outputs, tmp_path):
    shot, external = run_chromium(analyst_outputs.products.evidence.report, tmp_path)
    assert external == []
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2600, 1200)
    # The chips (and overview) are drawn: their yellow outlines appear on the page.
    yellow = (img == YELLOW).all(axis=-1)
    rows_with_yellow = np.flatnonzero(yellow.any(axis=1))
    assert yellow.sum() > 500
    # Chips of one detection sit side by side: yellow in both halves of the page width.
    left, right = yellow[:, :600].sum(), yellow[:, 600:].sum()
    assert left > 100 and right > 100, (left, right)
    assert rows_with_yellow.max() > 1000  # chips are below the overview and table
    # The table's header row (grey #f1f1f1) is rendered.
    assert (img == np.array([241, 241, 241])).all(axis=-1).sum() > 2000


@pytest.mark.slow
@needs_chromium
def test_network_check_catches_a_remote_image(analyst_outputs, tmp_path):
    """Control: the same check flags a page that does reach out."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="https://example.org/x.png"></body></html>')
    _, external = run_chromium(page, tmp_path)
    assert external == ["https://example.org/x.png"]


def rendered_text(html: Path, tmp: Path) -> str:
    """The page's text as Chromium lays it out (``innerText``: only what is rendered).

    The report has no script, so a wrapper page in ``tmp`` frames it and copies the
    frame's ``innerText`` into its own DOM, which ``--dump-dom`` prints.
    """
    wrapper = tmp / "wrapper.html"
    wrapper.write_text(
        '<!DOCTYPE html><html><body><pre id="out"></pre><iframe src="'
        + html.as_uri()
        + '" style="width:1200px;height:3000px" onload="document.getElementById('
        "'out').textContent = this.contentDocument.body.innerText\"></iframe></body></html>",
        encoding="utf-8",
    )
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={tmp / 'profile-text'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000",
        "--dump-dom",
        wrapper.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1).strip(), proc.stdout[-2000:]
    return html_lib.unescape(found.group(1)).replace("\xa0", " ")


@pytest.mark.slow
@needs_chromium
def test_rendered_report_shows_coordinates_credits_and_synthetic_banner(analyst_outputs, tmp_path):
    report = analyst_outputs.products.evidence.report
    text = rendered_text(report, tmp_path)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # The banner is the first thing on the page, and the title says it too.
    assert lines[0] == "SYNTHETIC IMAGERY: NOT A REAL FINDING"
    assert "SYNTHETIC: Possible new construction: Helong border-defence detention centre" in lines
    # Site header: the Helong catalogue point (42.5403 N, 129.0039 E) and its MGRS, and the
    # credits of both dates (never a file name, never an empty "()").
    assert_contains(
        text,
        "42.540300, 129.003900 (WGS 84, EPSG:4326)",
        "MGRS\t52TEN0032009767",
        "AOI location confidence\ttown",
        "Imagery (before): synthetic imagery (borderwatch.synthetic.make_pair(seed=0))",
        "Imagery (after): synthetic imagery",
    )
    assert "()" not in text and "before.tif and" not in text
    # Every detection's row with its coordinates and estimative class.
    for row in analyst_outputs.products.detections.itertuples():
        assert f"{row.lat:.6f}\t{row.lon:.6f}\t{row.mgrs}" in text, row.ref
    assert "probable building" in text
    # The banner is drawn big at the top: a wide band of its red across the first rows.
    shot, _ = run_chromium(report, tmp_path)
    img = np.asarray(Image.open(shot).convert("RGB"))
    red = (img[:200] == np.array([176, 0, 32])).all(axis=-1)
    assert red.sum() > 50_000 and red.any(axis=0).sum() > 900
