"""Nothing leaves the machine: the page is started and asked through inside a network namespace
with no network but loopback (`unshare -n`), under a guard that records every connect and name
lookup to anything but 127.0.0.1. Without `unshare`, the guard alone still shows what was tried.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent

# Run inside the namespace: start the page, ask through it, report what it answered and contacted.
DRIVER = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import httpx
from running_app import ask, running_app
index, tmp = Path(sys.argv[2]), Path(sys.argv[3])
out = {}
try:
    httpx.get("http://1.1.1.1", timeout=2)
    out["outside"] = "reachable"
except httpx.HTTPError as exc:
    out["outside"] = type(exc).__name__
with running_app(index, tmp / "data", tmp / "server.log") as server, httpx.Client(timeout=30) as c:
    out["red_flag"] = ask(c, server.url, "I can't feel my groin and I wet myself")["triage"]["level"]
    q = ask(c, server.url, "how do I do a bird dog?")
    out["question"] = [q["triage"]["level"], len(q["citations"])]
    out["contacted"] = server.contacted()
print(json.dumps(out))
"""


def _netns_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True).returncode == 0


def _drive(prefix: list[str], bot, settings, tmp_path: Path) -> dict:
    cmd = [*prefix, sys.executable, "-c", DRIVER, str(HERE), str(settings.index_dir), str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _check(out: dict) -> None:
    assert out["red_flag"] == "emergency"
    assert out["question"][0] in ("self_care", "see_pt") and out["question"][1] > 0
    assert out["contacted"] == []  # no connect, no name lookup beyond 127.0.0.1


def test_the_page_answers_with_no_network_and_contacts_only_localhost(bot, settings, tmp_path: Path) -> None:
    if not _netns_works():
        pytest.skip("`unshare -n` is not permitted here (test_the_page_contacts_only_localhost still guards)")
    # a namespace with only loopback, brought up; the driver and the page both live in it
    out = _drive(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"], bot, settings, tmp_path)
    assert out["outside"] != "reachable"  # the namespace really has no network
    _check(out)


def test_the_page_contacts_only_localhost(bot, settings, tmp_path: Path) -> None:
    """The same, on the ordinary network: the guard must record no attempt to go elsewhere."""
    out = _drive([], bot, settings, tmp_path)
    _check(out)
