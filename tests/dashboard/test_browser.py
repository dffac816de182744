"""End to end in headless Chromium (Debian's package): sign in, find a conversation, reply by
hand, create and preview a broadcast, assign a question to a topic, export a survey CSV, and
read the pages at 360 px. Screenshots go to tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bot.app import create_app
from bot.core.messages import Channel, Inbound
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_rasa import FakeRasa
from tests.dashboard.support import PASSWORD, add_user, contact_id, tag
from tests.support.builders import add_contact

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@dataclass
class Site:
    url: str
    runtime: Runtime
    member: str


@pytest.fixture
def site(
    tmp_path: Path, sqlite_template: Path, rasa: FakeRasa, password_hash: str
) -> Iterator[Site]:
    """The service on 127.0.0.1 with a real WSGI server, on SQLite, with a few conversations."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("Chromium is not installed (make test installs it)")
    database = tmp_path / "bot.db"
    database.write_bytes(sqlite_template.read_bytes())
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "browser-test-secret-key-0123",
            "RASA_URL": rasa.url,
            "NLU_TIMEOUT_MS": "500",
        }
    )
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True))
    add_user(runtime.db, "coord@example.org", "coordinator", password_hash)
    member = "+9779812000001"
    rasa.answers["when is the health camp"] = [("faq_steps", 0.42), ("faq_meaning", 0.31)]
    for body in ("Namaste", "when is the health camp"):
        runtime.accept(Inbound(Channel.SMS, member, body, provider_id=f"SM{uuid.uuid4().hex}"))
    tag(runtime.db, contact_id(runtime.db, member), "ward-3")
    add_contact(runtime.db, groups=("ward-3",), language="ne")
    runtime.accept(Inbound(Channel.SMS, "+9779812000002", "SURVEY", provider_id="SMsurvey1"))
    runtime.accept(Inbound(Channel.SMS, "+9779812000002", "2", provider_id="SMsurvey2"))
    app = create_app(settings, runtime)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_port}", runtime, member)
    server.shutdown()
    server.server_close()
    runtime.close()


def test_a_coordinators_day_in_the_browser(site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        # A CSP violation or a script error shows up here: the page must need nothing else.
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 else None,
        )
        page.on("request", lambda r: None if r.url.startswith(site.url) else problems.append(r.url))

        page.goto(site.url + "/")
        expect(page).to_have_url(f"{site.url}/dashboard/login?next=/dashboard/")
        page.fill("#email", "coord@example.org")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Overview")
        page.screenshot(path=ARTIFACTS / "01-overview.png", full_page=True)

        page.click("nav >> text=Conversations")
        page.fill("#phone", site.member[-6:])
        page.click("form.filters button[type=submit]")
        results = page.locator("#results li")
        expect(results).to_have_count(1)
        results.first.locator("a").click()
        expect(page.locator("h1")).to_contain_text(site.member)
        expect(page.locator(".thread")).to_contain_text("when is the health camp")
        page.fill("#body", "Namaste! The camp is on Sunday at the school.")
        page.select_option("#pause_hours", "4")
        page.click("#reply button[type=submit]")
        expect(page.locator(".flash.ok")).to_contain_text("Reply sent")
        expect(page.locator(".msg.out").last).to_contain_text("by hand: Coord")
        expect(page.locator("form.handoff")).to_contain_text("does not answer this person")
        page.screenshot(path=ARTIFACTS / "02-thread-reply.png", full_page=True)

        page.click("nav >> text=Broadcasts")
        page.click("text=New broadcast")
        page.fill("#title", "Health camp")
        page.fill("#body_en", "Health camp on Sunday at the school, 10am.")
        page.fill("#body_ne", "आइतबार बिहान १० बजे विद्यालयमा स्वास्थ्य शिविर।")
        page.select_option("#groups", ["ward-3"])
        # The live preview arrives without pressing anything.
        expect(page.locator("#preview-recipients")).to_have_text("2")
        expect(page.locator("#preview-panel")).to_contain_text("Segments")
        page.screenshot(path=ARTIFACTS / "03-broadcast-preview.png", full_page=True)
        page.click("#create-button")
        expect(page.locator("#status")).to_have_text("draft")
        page.click("#confirm-button")
        # The test's queue runs at once: the broadcast may already be sent.
        expect(page.locator("#status")).to_have_text(re.compile("^(sending|sent)$"))
        page.screenshot(path=ARTIFACTS / "04-broadcast-sent.png", full_page=True)

        page.click("nav >> text=NLU review")
        item = page.locator("#queue li").first
        expect(item).to_contain_text("when is the health camp")
        item.locator("select").select_option("faq_steps")
        item.locator("text=Assign to topic").click()
        expect(page.locator(".flash.ok")).to_contain_text("added as an example of faq_steps")
        expect(page.locator("#examples")).to_contain_text("when is the health camp")
        page.screenshot(path=ARTIFACTS / "05-nlu-review.png", full_page=True)

        page.click("nav >> text=Surveys")
        page.locator(".rows a").first.click()
        expect(page.locator("svg.chart").first).to_be_visible()
        with page.expect_download() as download:
            page.click("#export button[type=submit]")
        saved = tmp_path / "results.csv"
        download.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert [r["q_main_issue"] for r in rows] == ["roads"]
        page.screenshot(path=ARTIFACTS / "06-survey.png", full_page=True)

        # A small phone: nothing wider than the screen.
        page.set_viewport_size({"width": 360, "height": 740})
        for name, path in (
            ("07-narrow-conversations", "/dashboard/conversations"),
            ("08-narrow-overview", "/dashboard/"),
            ("09-narrow-broadcast-new", "/dashboard/broadcasts/new"),
        ):
            page.goto(site.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width} px wide"
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        browser.close()
    assert problems == []
