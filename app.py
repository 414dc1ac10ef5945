"""The chat page: settings -> Assistant -> chat callback -> launch (`make run`).

How answers look (banners, [n] links, the sources panel) is `assistant/render.py`;
where ratings go is `assistant/feedback.py`. This file only wires them to Gradio.
Besides the chat, `/ask` serves the JSON contract of `Assistant.ask` to scripts.
"""

from __future__ import annotations

import gc
import html
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import gradio as gr

import assistant  # noqa: F401, I001  (offline mode and no analytics, before Gradio is imported)
from assistant import render
from assistant.config import PACKAGE_DIR, Settings
from assistant.errors import AssistantError, InputError, with_emergency_note
from assistant.feedback import FeedbackStore
from assistant.oversize import OversizeLane
from assistant.session import SessionCodec

log = logging.getLogger("assistant.app")
BAD_REQUEST = "Bad request (400)"  # the title of an /ask error that is the client's mistake
# How often a running thread hands the interpreter lock over (Python's default: 5 ms). A request
# with huge input keeps one thread computing; every short request then waits up to this long
# each time it wants the lock back (after each model call, socket read...): at 5 ms a 7 ms answer
# took ~110 ms beside such a request, at 0.5 ms ~20 ms (tests/test_load.py, README "Reliability").
GIL_SWITCH_INTERVAL = 0.0005
STREAM_DELAY = 0.02  # seconds between streamed words; the answer itself is already computed
THEME = gr.themes.Default(
    primary_hue="teal",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)


class Loading:
    """The one Assistant, built in a background thread while the page is built and the
    server starts; `ask` waits until it is built. Then, in the same thread, it warms up
    (`Assistant.warm_up`, safe while answering), so answers never wait for that.
    """

    def __init__(self, load: Callable[[], Any], *, warm: bool = True) -> None:
        self._ready = threading.Event()
        self._bot: Any = None
        self._error: BaseException | None = None
        self.warmed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(load, warm), name="assistant-loader", daemon=True
        )
        self._thread.start()

    def _run(self, load: Callable[[], Any], warm: bool) -> None:
        try:
            self._bot = load()
        except BaseException as exc:  # re-raised by `wait`, in the threads that need the bot
            self._error = exc
        self._ready.set()
        if warm and self._error is None:
            started = time.perf_counter()
            try:
                self._bot.warm_up()
            except Exception:
                log.exception("warming up failed; answers embed what they need on first use")
            else:
                log.info("warmed up in %.1f s", time.perf_counter() - started)
        if self._error is None:
            # The loaded model, index and page are ~250k long-lived objects: a full collection
            # walks them all, holding the interpreter lock for ~150-250 ms, and every request in
            # flight stalls (the load test's p95). Frozen, collections skip them.
            gc.collect()
            gc.freeze()
        self.warmed.set()

    def wait(self, timeout: float | None = None) -> Any:
        """The Assistant once built; raises what building it raised."""
        if not self._ready.wait(timeout):
            raise TimeoutError("the assistant is still loading")
        if self._error is not None:
            raise self._error
        return self._bot

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        return self.wait().ask(*args, **kwargs)


class NoFiles:
    """ASGI middleware that refuses Gradio's upload and file routes: the page takes no files.

    Gradio opens `/gradio_api/upload` to anyone and serves what was uploaded back from
    `/gradio_api/file=`; this app has no file input and serves no files, so both are closed
    (403) before Gradio sees the request, whatever the path or its encoding.
    """

    REFUSED = ("/upload", "/upload_progress", "/file=", "/file/", "/stream/", "/proxy=")
    MESSAGE = b"This app takes no files and serves none."

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and self.refuses(scope.get("path", "")):
            await send({
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            })
            await send({"type": "http.response.body", "body": self.MESSAGE})
            return
        await self.app(scope, receive, send)

    @classmethod
    def refuses(cls, path: str) -> bool:
        path = unquote(path).lower()
        return any(path.startswith(p) or path.startswith("/gradio_api" + p) for p in cls.REFUSED)


def launch_options(settings: Settings | None = None) -> dict[str, Any]:
    """Everything `launch` needs besides host and port: local fonts and CSS, no share link,
    no file uploads, and the app's own folders never served."""
    from starlette.middleware import Middleware

    private = [settings.data_dir, settings.index_dir, settings.cache_dir] if settings else []
    return {
        "app_kwargs": {"middleware": [Middleware(NoFiles)]},
        "max_file_size": 1,  # bytes; a second lock behind NoFiles
        "blocked_paths": [str(Path(p).resolve()) for p in private] or None,
        "theme": THEME,
        "css_paths": [PACKAGE_DIR / "static" / "app.css"],
        "share": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "footer_links": ["api"],
    }


def build_page(
    bot: Any, settings: Settings, store: FeedbackStore | None = None, feedback_off: str = ""
) -> gr.Blocks:
    """The page around one `Assistant` (anything with `ask(message, history) -> Answer`).

    `feedback_off` is shown instead of the thumbs' note when feedback could not be switched on.
    The conversation is not kept here: the browser sends it back with every event as a signed
    token (`assistant/session.py`), so any replica of the page can answer the next message.
    """
    codec = SessionCodec.from_settings(settings)
    lane = OversizeLane(settings)  # one client's huge requests cannot starve the others

    def session(token: str | None) -> tuple[render.Transcript, str]:
        """The conversation in `token`, and a notice when it could not be read (a fresh one then)."""
        found = codec.load(token)
        if found is None:
            return render.Transcript(), render.SESSION_LOST
        return found, ""

    def chat(message: str, token: str) -> Iterator[tuple]:
        if not message or not message.strip():
            yield (gr.skip(),) * 5
            return
        transcript, lost = session(token)
        pending = [*transcript.messages(), {"role": "user", "content": render.escape_user_text(message)}]
        yield "", pending, gr.skip(), gr.skip(), render.notice(lost)
        now = time.time()  # wall clock: the next message may reach another replica
        transcript.recent = [t for t in transcript.recent if now - t < 60]
        limit = settings.requests_per_minute
        history = transcript.history()
        try:
            with lane.admit(message, history):
                if len(transcript.recent) >= limit:  # still triaged: a red flag gets its referral
                    answer = bot.ask(message, history, refuse=render.rate_limit_note(limit))
                else:
                    transcript.recent.append(now)
                    answer = bot.ask(message, history)
        except InputError as exc:  # too long, binary...: say so, give the text back to edit
            notice = render.notice(with_emergency_note(str(exc)))
            yield message, transcript.messages(), gr.skip(), codec.dump(transcript), notice
            return
        except Exception:
            log.exception("answering a message of %d characters failed", len(message))
            answer = None
        key = transcript.add(message, answer)
        sources, token = transcript.sources_html(), codec.dump(transcript)
        for i, messages in enumerate(transcript.stream(key)):
            if i:
                time.sleep(STREAM_DELAY)
            yield gr.skip(), messages, sources, token, gr.skip()

    def rate(token: str, data: gr.LikeData) -> tuple:
        index = data.index if isinstance(data.index, int) else data.index[0]
        transcript, lost = session(token)
        found = transcript.feedback_record(index)
        if store is None or found is None:
            return gr.skip(), gr.update(visible=False), render.notice(lost) if lost else gr.skip()
        key, record = found
        row = transcript.feedback_ids.get(key)
        try:
            if data.liked is True or data.liked is False:
                row = store.rate(record, "up" if data.liked else "down", row)
                transcript.feedback_ids[key] = transcript.last_feedback = row
                thanks = "Thanks, your rating was saved. You can add a comment below."
                return codec.dump(transcript), gr.update(visible=True), render.notice(thanks)
            if row is not None:  # the same thumb clicked again: rating withdrawn
                store.withdraw(row)
                del transcript.feedback_ids[key]
            transcript.last_feedback = None
            return codec.dump(transcript), gr.update(visible=False), render.notice("Rating removed.")
        except AssistantError:
            log.exception("saving feedback failed")
            sorry = render.notice("Sorry, the rating could not be saved.")
            return gr.skip(), gr.update(visible=False), sorry

    def comment(text: str, token: str) -> tuple:
        transcript, _ = session(token)
        if store is None or transcript.last_feedback is None or not text.strip():
            return "", gr.update(visible=False), render.notice("")
        try:
            store.comment(transcript.last_feedback, text)
        except InputError as exc:  # too long: say the limit, give the text back to shorten
            return text, gr.skip(), render.notice(str(exc))
        except AssistantError:
            log.exception("saving a feedback comment failed")
            return text, gr.skip(), render.notice("Sorry, the comment could not be saved.")
        return "", gr.update(visible=False), render.notice("Thanks, your comment was saved.")

    def pick(data: gr.SelectData) -> str:
        return data.value["text"]

    def restart() -> tuple:
        fresh = render.Transcript()
        return [], fresh.sources_html(), "", render.notice(""), gr.update(visible=False)

    def ask(message: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """Answer one message, given the conversation so far; returns the `ask --json` contract."""
        try:
            with lane.admit(message, history):
                return bot.ask(message, history).to_dict()
        except InputError as exc:  # the client's mistake: say what it was, log no traceback
            log.info("/ask refused a request: %s", type(exc).__name__)
            raise gr.Error(
                with_emergency_note(str(exc)), title=BAD_REQUEST, print_exception=False
            ) from exc
        except Exception as exc:
            log.exception("the /ask endpoint failed")
            raise gr.Error(render.ERROR_REPLY) from exc

    # delete_cache: Gradio's temp files (none are expected: uploads are refused) go within a day
    with gr.Blocks(title=render.TITLE, analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        # the conversation, held by the browser and sent back with every event (signed token)
        transcript = gr.Textbox("", visible=False, elem_id="session")
        gr.HTML(render.header(), elem_id="page-header")
        with gr.Row(equal_height=False, elem_id="main-row"):
            with gr.Column(scale=3, min_width=340):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="chat",
                    height=560,
                    layout="bubble",
                    examples=[{"text": q} for q in render.EXAMPLES],
                    placeholder="Ask about back pain from treadmill or incline walking, or pick an example.",
                    feedback_options=("Like", "Dislike") if store else None,
                    latex_delimiters=[],
                    buttons=[],  # a copy would carry our markup, not the text people see
                    sanitize_html=True,
                )
                with gr.Row(elem_id="ask-row"):
                    box = gr.Textbox(
                        label="Your question",
                        placeholder="e.g. Why does my back hurt on incline?",
                        lines=1,
                        max_lines=6,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                privacy = store.notice if store else feedback_off
                if privacy:
                    gr.HTML(f'<p class="feedback-note">{html.escape(privacy)}</p>', elem_id="feedback-note")
                status = gr.HTML(render.notice(""), elem_id="notice")
                with gr.Group(visible=False, elem_id="comment-box") as comment_box:
                    note = gr.Textbox(
                        label="Comment on this answer (optional)",
                        placeholder="What was missing or wrong?",
                        lines=2,
                        max_lines=6,
                        elem_id="comment",
                    )
                    save = gr.Button("Send comment", size="sm", elem_id="send-comment")
                clear = gr.Button("New conversation", variant="secondary", size="sm", elem_id="restart")
            with gr.Column(scale=2, min_width=300):
                sources = gr.HTML(render.Transcript().sources_html(), elem_id="sources-panel")

        outputs = [box, chatbot, sources, transcript, status]
        box.submit(chat, [box, transcript], outputs, api_name="chat")
        send.click(chat, [box, transcript], outputs, api_visibility="private")
        chatbot.example_select(pick, None, box, api_visibility="private").then(
            chat, [box, transcript], outputs, api_visibility="private"
        )
        chatbot.like(rate, [transcript], [transcript, comment_box, status], api_visibility="private")
        save.click(comment, [note, transcript], [note, comment_box, status], api_visibility="private")
        note.submit(comment, [note, transcript], [note, comment_box, status], api_visibility="private")
        fresh = [chatbot, sources, transcript, status, comment_box]
        for reset in (clear.click, chatbot.clear):
            reset(restart, None, fresh, api_visibility="private")
        gr.api(ask, api_name="ask")
    page.queue(default_concurrency_limit=settings.concurrency_limit)
    return page


def open_feedback(settings: Settings) -> tuple[FeedbackStore | None, str]:
    """The feedback store, or None and a notice saying why feedback is off (the page still starts)."""
    try:
        return FeedbackStore.from_settings(settings), ""
    except AssistantError as exc:
        log.warning("feedback is off: %s", exc)
        why = (
            "the feedback database cannot be reached" if settings.feedback_db_url
            else f"the data folder {settings.data_dir} cannot be written"
        )
        return None, f"Ratings are switched off: {why}. Nothing you type is stored."


def main() -> None:
    """Load settings and the one Assistant, then serve the page on settings.host:settings.port."""
    try:
        settings = Settings.load()
    except AssistantError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)

    def load() -> Any:
        from assistant.assistant import Assistant

        return Assistant.from_settings(settings)

    bot = Loading(load, warm=True)  # builds while the page starts; warms up once built
    store, feedback_off = open_feedback(settings)
    page = build_page(bot, settings, store, feedback_off)
    page.launch(
        server_name=settings.host, server_port=settings.port, prevent_thread_lock=True,
        **launch_options(settings),
    )
    try:
        bot.wait()
    except AssistantError as exc:  # no index and no documents, ...: say so and stop serving
        print(f"Error: {exc}", file=sys.stderr)
        page.close()
        sys.exit(1)
    page.block_thread()


if __name__ == "__main__":
    main()
