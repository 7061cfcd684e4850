"""The <ketamine-assistant> widget in a real browser, against the real server.

The API runs as a uvicorn subprocess; the host pages come from a second HTTP server on another
port, so every test installs the widget cross-origin, exactly as a clinic's website would.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright

from tests.server_process import free_port

pytestmark = pytest.mark.browser
expect.set_options(timeout=15_000)

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not on PATH (apt-get install chromium): widget browser tests NOT run",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
SERVER_APP = "app.main:app"
CLINIC_PHONE = "+1 555 010 0199"
CLINIC_DIGITS = "15550100199"
LAUNCHER = "Questions about your infusion?"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 667}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
    "resultTypes": ["violations"],
}
# Recorded from the first script on every page, so tests can assert the widget's public events.
RECORD_EVENTS = """
window.__events = [];
for (const name of ["open", "close", "reply", "error", "clear"]) {
  document.addEventListener("ketamine-assistant:" + name, (e) => {
    window.__events.push({type: e.type, detail: e.detail});
  });
}
"""
HOSTILE_CSS = """
* { all: unset !important; }
html { font-size: 40px !important; }
body { font-size: 40px !important; font-family: "Comic Sans MS", cursive !important; line-height: 3 !important;
       color: #ff00ff !important; transform: none; }
button, input, a { display: none !important; }
div, section, p { display: inline !important; padding: 30px !important; }
ketamine-assistant { display: none; opacity: 0; visibility: hidden !important; filter: blur(3px) !important; }
:root { --ka-accent: #ffff00; }
"""


@dataclass
class Site:
    """The clinic's website: static pages on their own origin."""

    origin: str
    pages: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.origin + path


def snippet(api: str, **data: str) -> str:
    attributes = "".join(f' data-{name.replace("_", "-")}="{value}"' for name, value in data.items())
    return f'<script src="{api}/widget/v1/ketamine-assistant.js" data-api="{api}"{attributes} defer></script>'


def host_page(title: str, body: str, head: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>{head}</head>
<body><header><a href="/index.html">Riverside Ketamine Clinic</a></header>
<main><h1>{title}</h1><p>Arrange a ride home. <a href="/other.html">Next page</a></p></main>
{body}</body></html>"""


@pytest.fixture(scope="module")
def host() -> Iterator[Site]:
    """A static web server on its own port: a different origin from the API."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            page = pages.get(self.path.split("?")[0])
            body = (page or "not found").encode()
            self.send_response(200 if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Site(origin=f"http://127.0.0.1:{server.server_address[1]}", pages=pages)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def api(host: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service, allowing the host site's origin."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KETAMINE_QA_CORS_ORIGINS": json.dumps([host.origin]),
        "KETAMINE_QA_CLINIC_PHONE": CLINIC_PHONE,
        "HF_HUB_OFFLINE": "1",
        # These tests ask dozens of questions a minute from one address; 429 handling is tested with a stub.
        "KETAMINE_QA_RATE_LIMIT_ANONYMOUS": "10000/minute",
    }
    log_path = tmp_path_factory.mktemp("api") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", SERVER_APP, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the API server exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"the API server was not ready within 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def site(host: Site, api: str) -> Site:
    """The clinic's website, with the install snippet pointing at the API."""
    full = snippet(api, clinic_name="Riverside Ketamine Clinic", clinic_phone=CLINIC_PHONE)
    host.pages["/index.html"] = host_page("Preparing for your first infusion", full)
    host.pages["/other.html"] = host_page("What to bring", full)
    # No data-clinic-phone: the clinic's number in a crisis reply must come from the server.
    host.pages["/no-phone.html"] = host_page("Contact", snippet(api, clinic_name="Riverside Ketamine Clinic"))
    host.pages["/hostile.html"] = host_page("Hostile styles", full, head=f"<style>{HOSTILE_CSS}</style>")
    # Placed by hand (attributes without data-) and the script included twice.
    script = f'<script src="{api}/widget/v1/ketamine-assistant.js" defer></script>'
    host.pages["/manual.html"] = host_page(
        "Placed by hand",
        f'<ketamine-assistant api="{api}" clinic-name="Hand-placed Clinic" '
        f'suggestions="First?|Second?|Third?"></ketamine-assistant>{script}{script}',
    )
    return host


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Pages in fresh contexts (own sessionStorage); fails the test on any uncaught script error."""
    contexts = []
    errors: list[str] = []

    def make(**options: Any) -> Page:
        context = browser.new_context(**{"viewport": DESKTOP, **options})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.add_init_script(RECORD_EVENTS)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"uncaught script errors: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


# — helpers —


def open_widget(page: Page) -> Locator:
    page.get_by_role("button", name=LAUNCHER).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    # Measure and audit the panel at rest, not half-way through its fade-in.
    dialog.evaluate("panel => Promise.all(panel.getAnimations().map(a => a.finished))")
    return dialog


def ask(page: Page, question: str) -> Locator:
    """Type a question, press Enter, and return the reply it produced."""
    before = page.locator(".ka-msg[data-kind]").count()
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")
    reply = page.locator(".ka-msg[data-kind]").nth(before)
    expect(reply).to_be_visible()
    return reply


def events(page: Page, name: str) -> list[dict[str, Any]]:
    return [e for e in page.evaluate("window.__events") if e["type"] == "ketamine-assistant:" + name]


def focused(page: Page) -> dict[str, Any]:
    """Where focus is inside the widget's shadow root."""
    return page.evaluate(
        """() => {
      const host = document.querySelector("ketamine-assistant");
      const active = host && host.shadowRoot.activeElement;
      return {
        inWidget: document.activeElement === host && !!active,
        inPanel: !!active && host.shadowRoot.querySelector(".ka-panel").contains(active),
        className: active ? active.className : null,
        tag: active ? active.tagName : null,
        outline: active ? getComputedStyle(active).outlineStyle + " " + getComputedStyle(active).outlineWidth : null,
      };
    }"""
    )


def hrefs(locator: Locator) -> list[str]:
    return locator.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")


def assert_no_axe_violations(page: Page, when: str) -> None:
    violations = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    # Our own report: the package's generate_report() cannot print shadow-DOM targets (nested lists).
    report = [
        f"{v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {n['target']}: {n['failureSummary']}" for n in v["nodes"])
        for v in violations
    ]
    assert not violations, f"axe, {when}:\n" + "\n".join(report)


def assert_targets_at_least_24px(dialog: Locator) -> None:
    boxes = dialog.locator("button:visible, a:visible, input:visible").evaluate_all(
        "els => els.map(e => [e.textContent.trim() || e.className, e.offsetWidth, e.offsetHeight])"
    )
    small = [b for b in boxes if b[1] < 24 or b[2] < 24]
    assert boxes and not small, f"targets under 24x24 px: {small}"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


# — serving —


def test_script_is_served_at_a_versioned_path_with_caching(api: str) -> None:
    with urllib.request.urlopen(api + "/widget/v1/ketamine-assistant.js", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/javascript")
        assert "max-age=3600" in response.headers["Cache-Control"]
        assert "public" in response.headers["Cache-Control"]
        assert b"customElements" in response.read()
    with urllib.request.urlopen(api + "/", timeout=10) as response:
        demo = response.read().decode()
    assert "Riverside Ketamine Clinic" in demo
    assert 'src="/widget/v1/ketamine-assistant.js"' in demo
    with contextlib.suppress(urllib.error.HTTPError):  # docs may be disabled; then there is no schema to leak into
        paths = get_json(api + "/openapi.json")["paths"]
        assert "/widget/v1/ketamine-assistant.js" not in paths
        assert "/" not in paths


# — conversation —


def test_opens_with_emergency_line_greeting_and_starter_chips(page: Page, site: Site, api: str) -> None:
    page.goto(site.url("/index.html"))
    log = page.locator("[role=log]")
    expect(log).to_be_attached()  # the live region exists before anything is said in it
    expect(log).to_have_attribute("aria-live", "polite")
    assert page.locator("ketamine-assistant").count() == 1

    dialog = open_widget(page)
    assert focused(page)["className"] == "ka-input"
    expect(dialog).to_have_accessible_name("Riverside Ketamine Clinic")
    emergency = dialog.locator(".ka-emergency")
    expect(emergency).to_contain_text("Not for emergencies")
    assert hrefs(emergency) == ["tel:911", "tel:988", "sms:988"]
    expect(log).to_contain_text("I can answer common questions")

    starters = [s["question"] for s in get_json(api + "/v1/suggestions")["suggestions"]][:4]
    chips = log.locator(".ka-greeting .ka-chip")
    expect(chips).to_have_count(len(starters))
    assert 3 <= len(starters) <= 4
    assert chips.all_text_contents() == starters
    assert len(events(page, "open")) == 1


def test_typed_question_gets_the_vetted_passage_and_the_notice(page: Page, site: Site) -> None:
    page.goto(site.url("/index.html"))
    open_widget(page)
    reply = ask(page, "does the needle hurt")

    expect(page.locator(".ka-msg--patient")).to_have_text("You: does the needle hurt")
    expect(reply).to_have_attribute("data-kind", "answer")
    detail = events(page, "reply")[0]["detail"]
    answer, notice = detail["reply"]["answer"], detail["reply"]["notice"]
    assert answer.endswith(notice)

    body = reply.locator(".ka-body")
    expect(body).to_contain_text("Ketamine infusions are generally not painful")
    assert body.inner_text() == answer[: -len(notice)].strip()
    assert notice not in body.inner_text()
    expect(reply.locator(".ka-notice")).to_have_text(notice)
    expect(reply.locator(".ka-section")).to_have_text(detail["reply"]["passage"]["section"])
    # The notice is visibly its own block, not just more body text.
    assert reply.locator(".ka-notice").evaluate("n => getComputedStyle(n).backgroundColor") != reply.evaluate(
        "n => getComputedStyle(n).backgroundColor"
    )
    expect(reply.locator(".ka-chip").first).to_be_visible()


def test_chip_sends_exactly_its_label(page: Page, site: Site) -> None:
    page.goto(site.url("/index.html"))
    open_widget(page)
    chip = page.locator(".ka-greeting .ka-chip").nth(1)
    label = chip.inner_text()
    with page.expect_request(lambda r: r.url.endswith("/v1/ask") and r.method == "POST") as request:
        chip.click()
    assert json.loads(request.value.post_data or "")["question"] == label
    assert request.value.headers["content-type"] == "application/json"
    expect(page.locator(".ka-msg--patient p")).to_have_text(label)
    expect(page.locator(".ka-msg[data-kind]")).to_have_count(1)


def test_crisis_reply_is_an_alert_with_tappable_help(page: Page, site: Site) -> None:
    page.goto(site.url("/no-phone.html"))
    dialog = open_widget(page)
    ask(page, "i want to kill myself")

    alert = dialog.get_by_role("alert")
    expect(alert).to_be_visible()
    links = hrefs(alert)
    for expected in ("tel:911", "tel:988", "sms:988"):
        assert expected in links
    assert any("988lifeline.org" in h for h in links)
    assert any(h.startswith("sms:741741") for h in links)
    # The page has no data-clinic-phone: this link comes from the server's KETAMINE_QA_CLINIC_PHONE.
    assert any(h.startswith("tel:") and re.sub(r"\D", "", h) == CLINIC_DIGITS for h in links), links
    expect(alert.locator(".ka-notice")).not_to_be_empty()
    assert_targets_at_least_24px(dialog)


def test_crisis_clinic_number_is_not_listed_twice(page: Page, site: Site) -> None:
    page.goto(site.url("/index.html"))  # data-clinic-phone set as well as the server's setting
    open_widget(page)
    ask(page, "i want to kill myself")
    links = hrefs(page.get_by_role("alert"))
    assert sum(1 for h in links if re.sub(r"\D", "", h) == CLINIC_DIGITS) == 1, links


def test_keyboard_only(page: Page, site: Site) -> None:
    page.goto(site.url("/index.html"))
    for _ in range(10):
        page.keyboard.press("Tab")
        if focused(page)["className"] == "ka-launcher":
            break
    assert focused(page)["className"] == "ka-launcher", "Tab never reached the launcher"
    outline = focused(page)["outline"]
    assert outline.startswith("solid") and float(outline.split()[1].removesuffix("px")) >= 2

    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    assert focused(page)["className"] == "ka-input"
    page.keyboard.type("how long does a session last")
    page.keyboard.press("Enter")
    expect(page.locator(".ka-msg[data-kind]")).to_have_count(1)

    seen = set()
    for key in ["Tab"] * 30 + ["Shift+Tab"] * 30:
        page.keyboard.press(key)
        where = focused(page)
        assert where["inPanel"], f"{key} moved focus out of the open panel: {where}"
        assert where["outline"].startswith("solid") or where["className"] == "ka-input", where
        seen.add(where["className"])
    assert {"ka-header-button ka-close", "ka-send", "ka-input", "ka-chip"} <= seen

    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert focused(page)["className"] == "ka-launcher"
    page.keyboard.press("Space")
    expect(page.get_by_role("dialog")).to_be_visible()
    assert focused(page)["className"] == "ka-input"
    assert [e["type"].split(":")[1] for e in page.evaluate("window.__events") if "reply" not in e["type"]] == [
        "open",
        "close",
        "open",
    ]


def test_no_axe_violations_open_after_reply_and_in_crisis(page: Page, site: Site, api: str) -> None:
    page.goto(site.url("/index.html"))
    dialog = open_widget(page)
    expect(page.locator(".ka-greeting .ka-chip").first).to_be_visible()
    assert_no_axe_violations(page, "panel open")
    assert_targets_at_least_24px(dialog)
    ask(page, "does the needle hurt")
    assert_no_axe_violations(page, "after an answer")
    ask(page, "i want to kill myself")
    assert_no_axe_violations(page, "after a crisis reply")

    page.goto(api + "/")
    open_widget(page)
    expect(page.locator(".ka-greeting .ka-chip").first).to_be_visible()
    assert_no_axe_violations(page, "demo page, panel open")


def test_hostile_host_css_cannot_break_it(page: Page, site: Site) -> None:
    page.goto(site.url("/hostile.html"))
    launcher = page.get_by_role("button", name=LAUNCHER)
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert box and box["width"] >= 24 and box["height"] >= 24
    assert box["x"] + box["width"] <= DESKTOP["width"] and box["y"] + box["height"] <= DESKTOP["height"]

    dialog = open_widget(page)
    panel = dialog.bounding_box()
    assert panel and panel["width"] == 380 and panel["y"] >= 0
    assert page.locator(".ka-input").evaluate("n => getComputedStyle(n).fontSize") == "16px"
    assert page.locator(".ka-title").evaluate("n => getComputedStyle(n).fontSize") == "17px"
    assert page.locator(".ka-launcher").evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(14, 90, 106)"
    reply = ask(page, "does the needle hurt")
    expect(reply).to_contain_text("Ketamine infusions are generally not painful")
    assert_targets_at_least_24px(dialog)


def test_phone_panel_fills_the_screen_and_keeps_the_input_visible(new_page: Callable[..., Page], api: str) -> None:
    page = new_page(viewport=PHONE, has_touch=True, is_mobile=True, reduced_motion="reduce")
    page.goto(api + "/")
    dialog = open_widget(page)
    assert dialog.bounding_box() == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    ask(page, "does the needle hurt")
    field_box = page.get_by_label("Your question").bounding_box()
    assert field_box and field_box["y"] >= 0 and field_box["y"] + field_box["height"] <= PHONE["height"]
    assert page.get_by_label("Your question").evaluate("n => parseFloat(getComputedStyle(n).fontSize)") >= 16
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "widget-phone.png", animations="disabled")


def test_desktop_screenshot(new_page: Callable[..., Page], api: str) -> None:
    page = new_page(reduced_motion="reduce")
    page.goto(api + "/")
    dialog = open_widget(page)
    box = dialog.bounding_box()
    assert box and box["width"] == 380 and box["x"] + box["width"] <= DESKTOP["width"]
    ask(page, "does the needle hurt")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "widget-desktop.png", animations="disabled")


# — failures —


def test_network_failure_keeps_the_question_and_offers_a_retry(page: Page, site: Site, api: str) -> None:
    page.goto(site.url("/index.html"))
    open_widget(page)
    question = "how long does a session last"
    field_ = page.get_by_label("Your question")

    page.route(api + "/v1/ask", lambda route: route.abort("connectionrefused"))
    field_.fill(question)
    field_.press("Enter")
    error = page.locator(".ka-error")
    expect(error).to_contain_text("try again")
    expect(field_).to_have_value(question)
    expect(page.locator(".ka-msg--patient")).to_have_count(0)
    assert events(page, "error")[0]["detail"]["question"] == question

    page.unroute(api + "/v1/ask")
    page.route(
        api + "/v1/ask",
        lambda route: route.fulfill(
            status=500,
            content_type="application/problem+json",
            headers={"Access-Control-Allow-Origin": site.origin},
            body='{"status": 500}',
        ),
    )
    field_.press("Enter")
    expect(error).to_contain_text("try again")
    expect(field_).to_have_value(question)
    assert events(page, "error")[-1]["detail"]["status"] == 500

    page.unroute(api + "/v1/ask")
    page.route(
        api + "/v1/ask",
        lambda route: route.fulfill(
            status=429,
            content_type="application/problem+json",
            headers={"Access-Control-Allow-Origin": site.origin, "Retry-After": "5"},
            body='{"status": 429}',
        ),
    )
    field_.press("Enter")
    expect(error).to_contain_text("wait a few seconds")
    expect(field_).to_have_value(question)

    page.unroute(api + "/v1/ask")
    field_.press("Enter")  # the retry is one key press
    expect(page.locator(".ka-msg[data-kind=answer]")).to_have_count(1)
    expect(page.locator(".ka-error")).to_have_count(0)
    expect(field_).to_have_value("")


def test_server_text_is_shown_as_text_never_as_markup(page: Page, site: Site, api: str) -> None:
    hostile = {
        "reply_id": "00000000-0000-0000-0000-000000000000",
        "kind": "crisis",
        "answer": '<img src=x onerror="window.__pwned=1"><b>Body</b>\n\nNotice <i>here</i>',
        "notice": "Notice <i>here</i>",
        "passage": None,
        "score": None,
        "suggestions": [{"passage_id": "x", "question": "<svg onload=window.__pwned=1>"}],
        "resources": [{"label": "Click <u>me</u>", "href": "javascript:window.__pwned=1", "kind": "web"}],
    }
    cors = {"Access-Control-Allow-Origin": site.origin}
    page.route(api + "/v1/ask", lambda route: route.fulfill(json=hostile, headers=cors))
    page.goto(site.url("/index.html"))
    open_widget(page)
    reply = ask(page, "anything")
    expect(reply.locator(".ka-body")).to_have_text('<img src=x onerror="window.__pwned=1"><b>Body</b>')
    expect(reply.locator(".ka-notice")).to_have_text("Notice <i>here</i>")
    expect(reply.locator(".ka-chip")).to_have_text("<svg onload=window.__pwned=1>")
    assert reply.locator("img, b, i, svg, u").count() == 0
    links = hrefs(reply)
    assert not any(h.startswith("javascript:") for h in links)
    assert "tel:911" in links and "tel:988" in links  # unusable resources fall back to the built-in ones
    assert page.evaluate("window.__pwned") is None


# — state —


def test_conversation_survives_navigation_and_clear_empties_it(page: Page, site: Site) -> None:
    page.goto(site.url("/index.html"))
    open_widget(page)
    ask(page, "does the needle hurt")
    page.keyboard.press("Escape")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**/other.html")

    open_widget(page)
    expect(page.locator(".ka-msg--patient")).to_have_text("You: does the needle hurt")
    expect(page.locator(".ka-msg[data-kind=answer]")).to_contain_text("Ketamine infusions are generally not painful")
    expect(page.locator(".ka-msg[data-kind=answer] .ka-notice")).not_to_be_empty()

    page.get_by_role("button", name="Clear conversation").click()
    expect(page.locator(".ka-msg--patient, .ka-msg[data-kind]")).to_have_count(0)
    expect(page.locator(".ka-greeting")).to_be_visible()
    assert len(events(page, "clear")) == 1
    page.reload()
    open_widget(page)
    expect(page.locator(".ka-greeting .ka-chip").first).to_be_visible()
    expect(page.locator(".ka-msg--patient, .ka-msg[data-kind]")).to_have_count(0)


def test_hand_placed_element_and_script_loaded_twice(page: Page, site: Site) -> None:
    page.goto(site.url("/manual.html"))
    assert page.locator("ketamine-assistant").count() == 1
    dialog = open_widget(page)
    expect(dialog).to_have_accessible_name("Hand-placed Clinic")
    reply = ask(page, "does the needle hurt")
    expect(reply).to_contain_text("Ketamine infusions are generally not painful")
    assert page.locator("ketamine-assistant").count() == 1
    # `hidden` is the host page's off-switch, even though the element's own styles win otherwise.
    page.keyboard.press("Escape")
    page.locator("ketamine-assistant").evaluate("n => n.hidden = true")
    expect(page.get_by_role("button", name=LAUNCHER)).to_be_hidden()


@pytest.mark.parametrize("motion", ["reduce", "no-preference"])
def test_reduced_motion_stops_animation(new_page: Callable[..., Page], site: Site, api: str, motion: str) -> None:
    page = new_page(reduced_motion=motion)
    held: list[Route] = []
    page.route(api + "/v1/ask", lambda route: held.append(route))  # hold the request so the typing indicator stays up
    page.goto(site.url("/index.html"))
    dialog = open_widget(page)
    page.get_by_label("Your question").fill("does the needle hurt")
    page.get_by_label("Your question").press("Enter")
    dots = page.locator(".ka-typing span").first
    expect(dots).to_be_attached()
    animations = [
        dots.evaluate("n => getComputedStyle(n).animationName"),
        dialog.evaluate("n => getComputedStyle(n).animationName"),
    ]
    if motion == "reduce":
        assert animations == ["none", "none"]
    else:
        assert "none" not in animations
    for route in held:
        route.continue_()
    expect(page.locator(".ka-msg[data-kind]")).to_have_count(1)
