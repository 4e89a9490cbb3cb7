"""The search page of ``beatdance serve`` in headless Chromium: item search, playing a match, its beat plot, an upload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()), None)


@pytest.fixture(scope="module")
def page(live_server):
    if CHROMIUM is None:
        message = "no Chromium binary at /usr/bin/chromium or on PATH; install it: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (`make test` installs it; CI must run the browser test)")
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(live_server)
        yield tab
        browser.close()


def _rows(page) -> int:
    page.wait_for_selector("#results-table tbody tr")
    return page.locator("#results-table tbody tr").count()


def test_item_search_play_and_plot(page):
    page.wait_for_function("document.querySelectorAll('#item-select option').length === 12")
    page.select_option("#item-select", index=1)
    page.fill("#item-top", "4")
    page.click("#item-search")
    assert _rows(page) == 4
    assert "dances for the music of" in page.inner_text("#results-title")
    page.locator("#results-table tbody tr").nth(1).click()
    media = page.locator("#match-media")
    src = media.get_attribute("src")
    assert src is not None and "/api/media/" in src and src.endswith("#t=0,10")
    page.wait_for_function(
        "document.getElementById('beat-plot').complete && document.getElementById('beat-plot').naturalWidth > 0"
    )
    assert page.evaluate("document.getElementById('beat-plot').naturalWidth") > 100
    page.wait_for_function(
        "document.getElementById('match-media').readyState >= 1"
    )  # the rendered MP4's metadata loaded
    assert page.evaluate("document.getElementById('match-media').duration") == pytest.approx(10.0, abs=0.2)
    # The player's title names the match's span in its take, as its table row does (a rendered dance plays 0-10 s).
    spans = page.locator("#results-table tbody tr td:nth-child(4)").all_inner_texts()
    later = next(i for i, text in enumerate(spans) if not text.startswith("0.0-"))
    page.locator("#results-table tbody tr").nth(later).click()
    assert page.inner_text("#player-title").endswith(spans[later])


def test_upload_search_and_error_message(page, small_corpus, tmp_path):
    page.set_input_files("#upload-file", str(small_corpus / "pair_003.wav"))
    page.select_option("#upload-modality", "music")
    page.click("#upload-search")
    page.wait_for_function("document.getElementById('results-title').textContent.includes('pair_003.wav')")
    assert _rows(page) == 10
    fake = tmp_path / "tool.wav"
    fake.write_bytes(b"MZ" + bytes(2000))
    page.set_input_files("#upload-file", str(fake))
    page.click("#upload-search")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert page.inner_text("#status").startswith("415:")
