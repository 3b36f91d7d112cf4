"""The report zip opened offline in a real headless browser (Debian's chromium, driven by playwright)."""

import os
import shutil
import subprocess
import zipfile

import pytest

pytestmark = pytest.mark.workflow

LOCAL = ("file:", "data:", "blob:", "about:")
# What the report's main pane shows after a result's eye is clicked: an image (figure) or a frame (table).
SHOWN = """() => {
    const img = [...document.querySelectorAll('img')].find(e => e.src.includes('/data/raw/'));
    if (img) return {src: img.src, ok: img.complete && img.naturalWidth > 100};
    const frame = [...document.querySelectorAll('iframe')].find(e => (e.src || '').includes('/data/raw/'));
    if (frame) return {src: frame.src, ok: null, frame: true};  // a file:// frame: read it through playwright
    return {src: null, ok: false};
}"""


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                       capture_output=True, env=env, timeout=900)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed and cannot be (needs root and apt-get)")
    return path


@pytest.fixture(scope="module")
def report_dir(report_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with zipfile.ZipFile(report_zip) as z:
        z.extractall(out)
        items = sorted(n.rsplit("/", 1)[1] for n in z.namelist() if "/data/raw/" in n)
    return out, items


def test_report_renders_every_result_offline(chromium, report_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    root, items = report_dir
    outside, shown = [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def guard(route):  # anything not on this machine is recorded and refused
            if route.request.url.startswith(LOCAL):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        page.goto((root / "report/report.html").as_uri())
        page.screenshot(path=tmp_path / "front.png")
        assert "moelab report" in page.inner_text("body")
        categories = page.locator("text=RESULTS").locator("xpath=following::a").all_inner_texts()
        todo = [[c.strip()] for c in categories if c.strip()]
        assert todo, "no result categories in the side bar"
        while todo:  # categories, then their subcategories: open each and show every result in it
            where = todo.pop()
            page.goto((root / "report/report.html").as_uri())
            for step in where:
                page.get_by_text(step, exact=True).click()
            todo += [[*where, sub.strip()] for sub in page.locator("li > a > span").all_inner_texts()]  # folders
            rows = page.locator("tbody tr")
            for i in range(rows.count()):
                row = rows.nth(i)
                name = row.inner_text().strip()
                row.locator("a[iconname=eye]").click()
                page.wait_for_timeout(200)
                got = page.evaluate(SHOWN)
                if got.get("frame"):
                    frame = page.frame(url=got["src"])
                    frame.wait_for_load_state()
                    got["ok"] = frame.locator("table tbody tr").count() > 0
                shown["/".join([*where, name])] = got
        page.screenshot(path=tmp_path / "last.png")
        browser.close()
    assert not outside, f"the report asked for something off this machine: {outside[:5]}"
    broken = {k: v for k, v in shown.items() if not v["ok"]}
    assert not broken, f"results that did not render: {broken}"
    seen = sorted(v["src"].rsplit("/", 1)[1] for v in shown.values())
    assert sorted(set(seen)) == sorted(set(items)), f"not shown: {sorted(set(items) - set(seen))}"
