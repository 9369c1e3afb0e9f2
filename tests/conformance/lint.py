"""Lints margay's responses with independent HTTP checkers.

Usage: python3 lint.py HOST:PORT

The server must serve a docroot holding htdocs' files plus `big.bin` (a file
larger than the small-file cache, so it goes out with sendfile). Two checkers,
neither written here:

- httplint (the linter behind REDbot) reads the response to each request in
  PROBES, a sweep over the statuses margay sends: files, HEAD, validators,
  ranges, redirects, handlers, request bodies and malformed requests;
- REDbot fetches each URL in PAGES itself and probes it the way a cache would
  (conditional requests, ranges, content negotiation), and with --assets the
  stylesheet and images the home page links.

A note rated bad fails the check, and so does a warning outside ALLOWED. A
probe may name notes it expects: a 400 to a request built to be bad draws the
note "the server didn't understand the request", which is the point.
Prints every note that was not good, then a summary; exits 1 on a failure.
"""

import json
import socket
import subprocess
import sys

from httplint import HttpRequestLinter, HttpResponseLinter

# Warnings that describe a choice, not a fault.
ALLOWED = {
    # margay sends no Cache-Control or Expires with files, as nginx does not by
    # default: how long a copy stays fresh is the site's call, and without it
    # caches use the Last-Modified heuristic of RFC 9111 section 4.2.2.
    "FRESHNESS_HEURISTIC",
}

LONG = "a" * 70_000

# (request, expected status, notes this request is expected to draw)
PROBES = [
    ("GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("HEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("GET /index.html HTTP/1.0\r\n\r\n", 200, set()),
    ("GET / HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, br\r\n\r\n", 200, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n", 304, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {last_modified}\r\n\r\n", 304, set()),
    ('GET /index.html HTTP/1.1\r\nHost: t\r\nIf-Match: "other"\r\n\r\n', 412, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n", 206, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n", 206, set()),
    # multipart/byteranges puts a Content-Range in each part (RFC 9110 section
    # 14.6), not in the header; httplint looks only at the header.
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,20-29\r\n\r\n", 206, {"PARTIAL_WITHOUT_RANGE"}),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nRange: bytes=99999999-\r\n\r\n", 416, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: \"other\"\r\n\r\n", 200, set()),
    ("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100000-100099\r\n\r\n", 206, set()),
    ("GET /downloads HTTP/1.1\r\nHost: t\r\n\r\n", 301, set()),
    ("GET /downloads/README.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("GET /missing.html HTTP/1.1\r\nHost: t\r\n\r\n", 404, set()),
    ("DELETE /index.html HTTP/1.1\r\nHost: t\r\n\r\n", 405, set()),
    ("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 204, set()),
    ("OPTIONS /index.html HTTP/1.1\r\nHost: t\r\n\r\n", 204, set()),
    ("GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n", 200, set()),
    ("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", 200, set()),
    (
        "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        200,
        set(),
    ),
    ("PUT /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 405, set()),
    ("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n", 413, set()),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\n\r\n", 417, set()),
    ("GET /index.html HTTP/1.1\r\n\r\n", 400, {"STATUS_BAD_REQUEST"}),
    ("GET /%2e%2e/secret HTTP/1.1\r\nHost: t\r\n\r\n", 400, {"STATUS_BAD_REQUEST"}),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, {"STATUS_BAD_REQUEST"}),
    ("BREW /index.html HTTP/1.1\r\nHost: t\r\n\r\n", 501, set()),
    ("GET /index.html HTTP/2.0\r\nHost: t\r\n\r\n", 505, {"STATUS_VERSION_NOT_SUPPORTED"}),
    ("GET /" + LONG + " HTTP/1.1\r\nHost: t\r\n\r\n", 414, {"STATUS_URI_TOO_LONG"}),
    ("GET /index.html HTTP/1.1\r\nHost: t\r\nX-Long: " + LONG + "\r\n\r\n", 431, set()),
]

PAGES = ["/", "/index.html", "/style.css", "/status.js", "/big.bin", "/api/status", "/downloads/README.txt"]


def exchange(addr, request):
    """Sends one request on its own connection and reads until the server closes."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def split_message(message):
    head, _, body = message.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = [tuple(part.strip() for part in line.split(b":", 1)) for line in lines[1:] if line]
    return lines[0], fields, body


def field(fields, name):
    for key, value in fields:
        if key.decode("latin-1").lower() == name.lower():
            return value.decode("latin-1")
    return None


def describe(text):
    """The request line and any field beyond Host, shortened, to tell probes apart."""
    lines = [line[:60] for line in text.split("\r\n\r\n", 1)[0].split("\r\n") if not line.startswith("Host:")]
    return " | ".join(lines)


def lint(request, response):
    """Returns (status, [(level, note id, summary)]) for one exchange."""
    line, fields, body = split_message(request)
    method, target, version = line.split(b" ", 2)
    req = HttpRequestLinter()
    req.process_request_topline(method, target, version)
    req.process_headers(fields)
    req.feed_content(body)
    req.finish_content(True)

    line, fields, body = split_message(response)
    version, status, phrase = (line.split(b" ", 2) + [b""])[:3]
    res = HttpResponseLinter(_related=req, no_content=method == b"HEAD")
    res.process_response_topline(version, status, phrase)
    res.process_headers(fields)
    res.feed_content(body)
    res.finish_content(True)
    return int(status), [(note.level.value, note.__class__.__name__, str(note.summary)) for note in res.notes]


def judge(label, notes, expected, failures):
    for level, note, summary in notes:
        if level == "good" or (level == "info" and note not in expected):
            continue
        if note in expected:
            print(f"  expected {level}: {note}: {summary}")
        elif level == "warning" and note in ALLOWED:
            print(f"  allowed {level}: {note}: {summary}")
        elif level in ("bad", "warning"):
            print(f"  FAIL {level}: {note}: {summary}")
            failures.append(f"{label}: {note} ({summary})")


def main():
    addr = sys.argv[1]
    failures = []

    first = exchange(addr, b"GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    _, fields, _ = split_message(first)
    validators = {"etag": field(fields, "ETag"), "last_modified": field(fields, "Last-Modified")}

    for text, want, expected in PROBES:
        text = text.format(**validators)
        head, sep, body = text.partition("\r\n\r\n")
        request = (head + "\r\nConnection: close" + sep + body).encode("latin-1")
        label = describe(text)
        status, notes = lint(request, exchange(addr, request))
        print(f"{label} -> {status}")
        if status != want:
            print(f"  FAIL status {status}, expected {want}")
            failures.append(f"{label}: status {status}, expected {want}")
        judge(label, notes, expected, failures)

    for page in PAGES:
        url = f"http://{addr}{page}"
        har = subprocess.run(
            ["redbot", "--assets", "--output-format", "har", url],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        for entry in json.loads(har)["log"]["entries"]:
            label = f"redbot {entry['request']['url']}"
            print(f"{label} -> {entry['response']['status']}")
            notes = [(m["level"].lower().replace("warn", "warning"), m["note_id"], m["summary"]) for m in entry["_red_messages"]]
            judge(label, notes, set(), failures)

    if failures:
        print(f"\n{len(failures)} failure(s):")
        for failure in failures:
            print(f"  {failure}")
        sys.exit(1)
    print(f"\nno bad note and no warning outside the allowed list ({len(PROBES)} probes, {len(PAGES)} pages)")


if __name__ == "__main__":
    main()
