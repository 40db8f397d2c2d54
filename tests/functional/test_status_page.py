"""The status page in a real browser: headless Chromium loads GET / from a live regtest node and its script runs.

Chromium comes from Debian's `chromium` package; when it is missing and the tests
run as root, the fixture installs it with apt-get and skips only if that fails.
A peer with an HTML user agent checks that peer-controlled text stays text.
A screenshot is kept in tests/artifacts/status_page.png for a person to look at.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tiny_model import write_tiny_model

from camelid.core.params import get_params
from camelid.crypto.keys import PrivateKey
from camelid.p2p.manager import P2PSettings, PeerManager

from .framework import wait_until
from .util import MINER_ADDRESS

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE_AGENT = '<img src=x onerror="document.title=1">'
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # Chromium's sandbox refuses to run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=3000",  # let the script fetch status.json and render before the dump
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary, installed with apt-get when missing and running as root; skip when neither works."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed, and installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (["apt-get", *lock_wait, "update"], ["apt-get", *lock_wait, "install", "-y", "chromium"]):
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"chromium is not installed and `{' '.join(command)}` failed: {exc.stderr[-500:]}")
        except subprocess.TimeoutExpired:
            pytest.skip(f"chromium is not installed and `{' '.join(command)}` timed out")
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("apt-get installed chromium but it is not on PATH")
    return found


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    run = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


class TextById(HTMLParser):
    """Text content of every element carrying an id, plus the tag names seen, from a dumped DOM."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.tags: list[str] = []
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("meta", "link", "br", "img", "input"):
            return  # void elements never close
        element_id = dict(attrs).get("id")
        self._open.append(element_id)
        if element_id:
            self.text[element_id] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.text[element_id] += data


@contextmanager
def hostile_peer(p2p_port: int) -> Iterator[None]:
    """A P2P peer, in a thread of its own, connected to 127.0.0.1:`p2p_port` with HTML for a user agent."""
    settings = P2PSettings(
        params=get_params("regtest"),
        node_key=PrivateKey.generate(),
        listen=False,
        connect=(("127.0.0.1", p2p_port),),
        user_agent=HOSTILE_AGENT,
    )
    stop = threading.Event()

    async def serve() -> None:
        task = asyncio.create_task(PeerManager(settings).run())
        await asyncio.to_thread(stop.wait)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="hostile-peer")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_browser_shows_the_live_tip_and_peer_text_stays_text(camelid_nodes, chromium, tmp_path):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (node,) = camelid_nodes(1, [["--mine-processes=1", f"--serve-model={model}"]])
    (model_id,) = [m["id"] for m in node.listmodels()]
    tip_hash = node.generatetoaddress(5, MINER_ADDRESS)[-1]
    url = f"http://127.0.0.1:{node.rpc_port}/"
    with hostile_peer(node.p2p_port):
        wait_until(lambda: node.getconnectioncount() == 1, what="the hostile peer's handshake")
        dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "status_page.png"
        screenshot.unlink(missing_ok=True)
        run_chromium(chromium, tmp_path / "profile", "--window-size=1000,900", f"--screenshot={screenshot}", url)

    page = TextById(dom)
    assert page.text["tip-height"] == "5"
    assert page.text["tip-hash"] == tip_hash
    assert page.text["network"] == "regtest"
    assert page.text["peer-count"] == "1"
    assert HOSTILE_AGENT in page.text["peer-list"]  # shown as text ...
    assert "img" not in page.tags  # ... never turned into an element
    assert page.text["mining"] == "no"
    assert page.text["models"].startswith("tiny") and page.text["models"].endswith(f"id {model_id})")
    assert page.text["jobs"] == "no jobs seen"
    assert page.text["state"].startswith("Updated ")
    # The charts: inline SVG drawn by the page's own script, one bar per block interval.
    assert page.text["chart-blocks-caption"].startswith("last 5 blocks: median ")
    assert page.text["chart-jobs-caption"] == "no jobs in the last 30 minutes"
    assert page.text["chart-latency-caption"] == "no delivered jobs yet"
    assert "svg" in page.tags and page.tags.count("rect") >= 5
    assert "max " in page.text["chart-blocks"]
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_nostatus_serves_json_rpc_only(camelid_nodes):
    (node,) = camelid_nodes(1, [["--nostatus"]])
    base = f"http://127.0.0.1:{node.rpc_port}"
    assert http_status(base + "/status.json") == 404
    assert http_status(base + "/") == 405  # Bitcoin Core's answer to anything but POST
    assert node.getblockcount() == 0
