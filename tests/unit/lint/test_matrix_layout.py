"""The HTML matrix at 1366 px, laid out by a real browser (headless Chromium, when installed).

Was: one long regex did not wrap and pushed the ``member+service:service``
column out of a 1400 px window. The page is rendered with the shipped
production rules and a dozen role sets; a script in the page measures where
the last column ends. Skipped where Chromium is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from propguard.cli import main

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SETS = (
    "member;admin;reader;member+service:service;service:service;-;member,reader;"
    "admin+service:nova;reader+service:cinder;project_admin;load-balancer_member;"
    "member+service:service+service:nova"
)
MEASURE = """<script>
const sets = [...document.querySelectorAll('thead th.set')];
const cells = [...document.querySelectorAll('tbody td')];
document.body.setAttribute('data-layout', JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  lastColumnRight: Math.max(...cells.map(c => c.getBoundingClientRect().right)),
  sets: sets.length,
}));
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
@pytest.mark.parametrize("width", [1366, 1400])
def test_every_column_is_visible(tmp_path, width):
    page = tmp_path / "matrix.html"
    rules = ROOT / "policies" / "production.conf"
    argv = ["matrix", "--rules", str(rules), "--roles-sets", SETS, "--format", "html"]
    assert main([*argv, "-o", str(page)]) == 0
    page.write_text(page.read_text().replace("</body>", MEASURE))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},768",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"data-layout=\"([^\"]*)\"", result.stdout)
    assert match, result.stderr[-2000:]
    layout = json.loads(match.group(1).replace("&quot;", '"'))
    assert layout["sets"] == 12
    assert layout["scrollWidth"] <= width, layout
    assert layout["lastColumnRight"] <= width, layout
