#!/usr/bin/env python3
"""Check that status.html, open in a running headless Chromium, updates from /api/events.

Usage: status_events.py PROFILE_DIR BASE_URL [SCREENSHOT]

Chromium must have been started with --remote-debugging-port=0 --user-data-dir=PROFILE_DIR
on BASE_URL/status.html. Through the DevTools protocol (a WebSocket; the client below is
the few lines of RFC 6455 this needs, so the check needs nothing but Python) it reads the
page's state line and table twice, with traffic to the server in between, and fails unless:
the page says it is fed by the event stream, it showed at least two more pushed reports in
between, and its requests counter grew. Saves a screenshot when asked.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

READ_PAGE = """JSON.stringify({
  source: document.getElementById("state").dataset.source || "",
  reports: Number(document.getElementById("state").dataset.reports || 0),
  state: document.getElementById("state").textContent,
  requests: Number(document.getElementById("requests").textContent.replace(/,/g, "")),
  uptime: document.getElementById("uptime").textContent,
  lines: document.querySelectorAll('path.line[d^="M"]').length,
})"""


def fail(message: str) -> None:
    print(f"status_events: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class DevTools:
    """One WebSocket to one page target: send a command, return its result."""

    def __init__(self, ws_url: str):
        rest = ws_url.removeprefix("ws://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                fail("DevTools closed the WebSocket handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            fail(f"DevTools refused the WebSocket: {head[:200]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail("DevTools closed the WebSocket")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _message(self) -> bytes:
        payload = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload += self._read(length)
            if first & 0x80:  # FIN
                return payload

    def call(self, method: str, **params):
        self.next_id += 1
        data = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        if len(data) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(data))
        else:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)
        while True:
            reply = json.loads(self._message())
            if reply.get("id") == self.next_id:  # events and other replies are skipped
                if "error" in reply:
                    fail(f"{method}: {reply['error']}")
                return reply["result"]


def page_target(profile: str) -> str:
    """The WebSocket URL of the page Chromium opened, once DevTools is up."""
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(port_file) as f:
                port = int(f.readline())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    fail("Chromium's DevTools did not come up within 30 s")
    return ""


def read_page(devtools: DevTools) -> dict | None:
    """The page's state line and counters; None while the page is still loading."""
    result = devtools.call("Runtime.evaluate", expression=READ_PAGE, returnByValue=True)
    if "exceptionDetails" in result:
        return None
    return json.loads(result["result"]["value"])


def wait_for(devtools: DevTools, want, what: str, within: float = 20) -> dict:
    deadline = time.monotonic() + within
    while True:
        page = read_page(devtools)
        if page is not None and want(page):
            return page
        if time.monotonic() > deadline:
            fail(f"{what} within {within:.0f} s; the page: {page}")
        time.sleep(0.2)


def main() -> int:
    profile, base = sys.argv[1], sys.argv[2]
    screenshot = sys.argv[3] if len(sys.argv) > 3 else None
    devtools = DevTools(page_target(profile))
    first = wait_for(devtools, lambda p: p["reports"] >= 1, "no report was shown")
    if first["source"] != "events":
        fail(f"the page is fed by '{first['source']}', not the event stream: {first['state']}")
    for _ in range(20):
        with urllib.request.urlopen(f"{base}/", timeout=5) as r:
            r.read()
    second = wait_for(
        devtools,
        lambda p: p["reports"] >= first["reports"] + 2 and p["requests"] > first["requests"],
        "the page did not show two more pushed reports with more requests",
    )
    if second["source"] != "events":
        fail(f"the page fell back to '{second['source']}': {second['state']}")
    if second["lines"] != 2:
        fail(f"{second['lines']} charts drawn, not 2")
    print(
        f"status_events: pushed reports {first['reports']} -> {second['reports']}, "
        f"requests shown {first['requests']} -> {second['requests']}, "
        f"uptime {first['uptime']} -> {second['uptime']}"
    )
    if screenshot:
        shot = devtools.call("Page.captureScreenshot", format="png")
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
