"""The page takes no files and serves none: Gradio's upload and file routes are closed.

A real page (`app.build_page` around the session's Assistant, with a real feedback store
and index in temp folders) on 127.0.0.1, probed with raw HTTP so no client tidies the
paths: uploads are refused and stored nowhere, and no file outside the app (system files,
the data folder, the feedback database, the index) is served, however the path is spelled.
"""

from __future__ import annotations

import http.client
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

import app
from assistant.feedback import FILENAME, FeedbackStore
from tests.test_app import _serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(bot, settings, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    store = FeedbackStore(data / FILENAME)
    store.rate({"user_input": "secret question", "response": "a", "citations": [], "triage_level": "self_care"}, "up")
    served = settings.model_copy(update={"data_dir": data})
    for url in _serve(bot, served, store, launch=app.launch_options(served)):
        yield urlparse(url), data, served


def _request(url, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_the_upload_endpoint_is_closed(page) -> None:
    url, _, _ = page
    marker = f"uploaded-{uuid.uuid4().hex}"
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{marker}.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\n{marker}\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": "http://evil.example"}
    for path in ("/gradio_api/upload", "/gradio_api/upload?upload_id=x", "/gradio_api//upload", "/upload"):
        status, text = _request(url, "POST", path, body, headers)
        assert status in (403, 404, 405), (path, status, text)
        assert marker.encode() not in text
    status, _ = _request(url, "GET", "/gradio_api/upload_progress?upload_id=x")
    assert status in (403, 404)
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob(f"gradio/**/{marker}.txt"))  # stored nowhere


def _secrets(data: Path, settings) -> list[str]:
    current = (settings.index_dir / "CURRENT").read_text().strip()
    return [
        "/etc/passwd",
        str(data / FILENAME),
        str(data),
        str(settings.index_dir / "CURRENT"),
        str(settings.index_dir / current / "chroma.sqlite3"),
        str(Path(app.__file__).resolve()),
    ]


def test_no_file_outside_the_app_is_served(page) -> None:
    url, data, settings = page
    paths = []
    for secret in _secrets(data, settings):
        paths += [f"/gradio_api/file={secret}", f"/file={secret}", f"/gradio_api/file/{secret}"]
    paths += [
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gradio_api/file=%2fetc%2fpasswd",
        "/gradio_api/file=//etc/passwd",
        "/gradio_api/FILE=/etc/passwd",
        "/gradio_api/file=....//....//....//etc/passwd",
        "/gradio_api/file=%252e%252e%252fetc%252fpasswd",
        f"/gradio_api/file={data}/../{data.name}/{FILENAME}",
        "/gradio_api/proxy=http://127.0.0.1/",
        "/static/../../../../etc/passwd",
        "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    ]
    for path in paths:
        status, body = _request(url, "GET", path)
        assert status in (400, 403, 404, 405), (path, status)
        assert b"root:" not in body and b"SQLite format" not in body and b"secret question" not in body, path


def test_the_page_itself_still_loads(page) -> None:
    url, _, _ = page
    status, body = _request(url, "GET", "/")
    assert status == 200 and b"<html" in body.lower()
    status, _ = _request(url, "GET", "/gradio_api/info")
    assert status == 200


def test_no_files_recognises_every_spelling() -> None:
    for path in ("/gradio_api/upload", "/gradio_api/file=/etc/passwd", "/GRADIO_API/FILE%3D/etc", "/file=x",
                 "/gradio_api/file/x", "/gradio_api/proxy=http://x"):
        assert app.NoFiles.refuses(path), path
    for path in ("/", "/gradio_api/info", "/gradio_api/queue/join", "/assets/index.js", "/config"):
        assert not app.NoFiles.refuses(path), path
