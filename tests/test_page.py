"""The chat page in a real browser: `python app.py` on a free port, driven by Debian's Chromium.

One app process and one browser for the module; each test opens its own page (its
own Gradio session). Every request a page makes is recorded and must go to
127.0.0.1. Screenshots land in test-output/ (gitignored) to be looked at.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from assistant.config import PROJECT_ROOT
from assistant.feedback import FILENAME

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OUT = PROJECT_ROOT / "test-output"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
WAIT_MS = 60_000  # upper bound for one answer to appear; never asserted on
BOT = "#chat .message-row.bot-row"
USER = "#chat .message-row.user-row"
DONE = "not a diagnosis"  # the reminder that ends every advice answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python app.py` with its own index and data folders; yields (url, data_dir)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed: run `make setup` (or apt-get install chromium)")
    root = tmp_path_factory.mktemp("page")
    port = _free_port()
    env = {
        **os.environ,
        "ASSISTANT_PORT": str(port),
        "ASSISTANT_INDEX_DIR": str(root / "index"),
        "ASSISTANT_DATA_DIR": str(root / "data"),
        "ASSISTANT_LOG_LEVEL": "INFO",
    }
    env.pop("GRADIO_SERVER_PORT", None)
    log = (root / "app.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{(root / 'app.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer on {url}:\n{(root / 'app.log').read_text()}")
            time.sleep(0.5)
        yield url, root / "data"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A browser page on the app, with what it requested and any dialog that opened."""

    def __init__(self, browser, url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(url)
        self.page.wait_for_selector("#question textarea")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def send(self, text: str) -> None:
        """Type a message into the box and press Enter."""
        self.page.fill("#question textarea", text)
        self.page.press("#question textarea", "Enter")

    def reply(self, n: int) -> str:
        """Wait until the n-th reply has finished streaming in, and return its text."""
        self.page.wait_for_function(
            """([sel, n]) => document.querySelectorAll(sel).length >= n &&
                   document.querySelector('#chat [data-testid=status-tracker]').classList.contains('hide')""",
            arg=[BOT, n],
        )
        return self.page.locator(BOT).nth(n - 1).inner_text()

    def last_reply(self) -> str:
        return self.page.locator(BOT).last.inner_text()

    def external(self) -> list[str]:
        return [u for u in self.requests if urlparse(u).hostname not in ("127.0.0.1",) and not u.startswith("data:")]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def desktop(browser, server) -> Iterator[Page]:
    p = Page(browser, server[0], DESKTOP)
    yield p
    assert p.requests, "no request was recorded"
    assert p.external() == [], "the page fetched something from outside 127.0.0.1"
    assert p.dialogs == []
    p.close()


@pytest.fixture
def phone(browser, server) -> Iterator[Page]:
    p = Page(browser, server[0], PHONE)
    yield p
    assert p.requests and p.external() == []
    assert p.dialogs == []
    p.close()


def test_answer_streams_in_with_checkable_sources(desktop: Page) -> None:
    page = desktop.page
    assert page.locator("h1").inner_text() == "Back-pain guidance"
    assert "not a diagnosis" in page.locator(".intro").inner_text()
    # record every state of the reply as it streams in
    page.evaluate(
        """() => { window.__states = new Set();
            new MutationObserver(() => {
                const r = document.querySelectorAll('#chat .message-row.bot-row');
                if (r.length) window.__states.add(r[r.length - 1].innerText.length);
            }).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
        }"""
    )
    desktop.send("why does my back hurt on incline")
    reply = desktop.reply(1)
    assert page.evaluate("() => window.__states.size") >= 3, "the reply did not stream in"
    assert "[1]" in reply and DONE in reply

    panel = page.locator("#sources-panel")
    first = panel.locator("article.source#src-1-1")
    assert "Treadmill" in first.locator("cite").inner_text()
    assert "Section:" in first.inner_text()
    marks = [" ".join(m.split()) for m in panel.locator("mark").all_inner_texts()]
    assert marks, "no cited sentence is highlighted"
    flat_reply = " ".join(reply.split())
    assert sum(m in flat_reply for m in marks) >= len(marks) // 2  # the rest carry attributions
    assert panel.locator(".source-meta", has_text="Expert").count() >= 1

    # a [n] marker takes you to its passage
    page.locator(f"{BOT} a.cite").first.click()
    assert page.evaluate("() => location.hash").startswith("#src-1-")
    page.locator(BOT).last.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.evaluate("() => window.scrollTo(0, 0)")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "desktop-answer.png"))


def test_follow_up_question_uses_the_conversation(desktop: Page) -> None:
    desktop.page.locator("#chat button", has_text="Tell me about the glute bridge").click()
    assert "Glute Bridge" in desktop.reply(1)
    desktop.send("how many reps?")
    reply = desktop.reply(2)
    assert "Glute Bridge" in reply and "Repeat 10 times" in reply
    assert "Glute Bridge" in desktop.page.locator("#sources-panel .latest").inner_text()
    desktop.page.screenshot(path=str(OUT / "desktop-follow-up.png"))


def test_emergency_shows_a_red_alert_banner_first(desktop: Page) -> None:
    page = desktop.page
    desktop.send("I peed myself and can't feel my groin after the treadmill")
    reply = desktop.reply(1)
    banner = page.locator(f"{BOT} .triage-emergency[role=alert]")
    text = banner.inner_text()
    assert "Emergency" in text and "emergency number" in text
    assert reply.index("Emergency") < reply.index("What I noticed")  # the banner comes first
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(180, 35, 24)"
    assert "safety referral" in page.locator("#sources-panel").inner_text()
    assert page.locator(USER).last.inner_text().strip() == (
        "I peed myself and can't feel my groin after the treadmill"  # shown as typed
    )
    page.screenshot(path=str(OUT / "desktop-emergency.png"))


@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"])
def test_html_in_a_message_is_shown_as_text(desktop: Page, payload: str) -> None:
    page = desktop.page
    desktop.send(payload)
    desktop.reply(1)
    assert page.locator(USER).last.inner_text().strip() == payload
    assert payload in page.locator("#sources-panel h3").first.inner_text()
    assert page.locator("#chat img[src='x'], #sources-panel img[src='x']").count() == 0
    assert page.locator("#chat script, #sources-panel script").count() == 0
    assert desktop.dialogs == []


def test_empty_and_too_long_messages(desktop: Page) -> None:
    page = desktop.page
    page.press("#question textarea", "Enter")  # empty: nothing happens
    # Gradio drops a submit while the previous one is pending (trigger_mode "once"):
    # let the empty submit finish before the next.
    page.wait_for_timeout(1000)
    page.wait_for_function(
        "document.querySelector('#chat [data-testid=status-tracker]')?.classList.contains('hide') ?? true"
    )
    long = "which incline and speed should I choose on my treadmill " * 45  # no warning sign
    desktop.send(long)
    notice = page.locator("#notice .notice-shown")
    assert "the limit is 2,000" in notice.inner_text()
    assert page.input_value("#question textarea") == long  # kept, to be shortened
    desktop.send("why does my back hurt on incline")
    desktop.reply(1)
    assert page.locator(USER).count() == 1  # neither the empty nor the long one was sent
    assert page.locator("#notice .notice-shown").count() == 0


def test_thumbs_down_with_a_comment_is_stored(desktop: Page, server) -> None:
    page = desktop.page
    desktop.send("tell me about the glute bridge")
    desktop.reply(1)
    page.locator("#chat button[aria-label=Dislike]").last.click()
    page.fill("#comment textarea", "I wanted the bird dog")
    page.locator("#send-comment").click()
    page.locator("#notice", has_text="comment was saved").wait_for()
    with sqlite3.connect(server[1] / FILENAME) as db:
        rows = db.execute(
            "SELECT user_input, rating, comment, response, citations FROM feedback "
            "WHERE comment = 'I wanted the bird dog'"
        ).fetchall()
    assert len(rows) == 1
    user_input, rating, _, response, citations = rows[0]
    assert (user_input, rating) == ("tell me about the glute bridge", "down")
    assert "Glute Bridge" in response and "Glute Bridge" in citations


def test_phone_width_and_keyboard_only(phone: Page) -> None:
    page = phone.page
    assert page.evaluate("() => document.activeElement.closest('#question') !== null")
    page.keyboard.type("why does my back hurt on incline")
    page.keyboard.press("Enter")
    phone.reply(1)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    # Tab through the page until a [n] link has focus, then follow it with Enter
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('cite')"):
            break
    else:
        pytest.fail("no [n] link is reachable with Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash").startswith("#src-1-")
    page.evaluate("() => window.scrollTo(0, 0)")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "phone-answer.png"))
    page.screenshot(path=str(OUT / "phone-full.png"), full_page=True)


@pytest.mark.parametrize(
    "message",
    ["both legs [click](//localhost/x) numb",
     "my back hurts after every single workout, the pain [click](//localhost/y) goes down my leg"],
)
def test_quoted_user_words_are_inert(desktop: Page, message: str) -> None:
    """Triage reasons quote the person; a Markdown link in their words stays text, in the banner too."""
    page = desktop.page
    desktop.send(message)
    reply = desktop.reply(1)
    assert page.locator("#chat a[href*='localhost']").count() == 0
    assert "[click](//localhost/" in reply  # quoted as typed
    assert page.locator(USER).last.inner_text().strip() == message
