#!/usr/bin/env python3
"""Open N kept-alive connections to a server, one request each, and hold them idle.

Usage: idle_conns.py [--tls] HOST PORT N [PATH] [HOLD_SECONDS]

Each connection sends one GET for PATH (default /index.html), reads the whole
response (Content-Length framed), and is then left open and idle. When all are
open the script prints "ready OPEN FAILED" on one line and holds them for
HOLD_SECONDS (default 60), then closes them and exits; send it SIGTERM to end
it sooner. Used to measure a server's memory per idle
connection: its RSS with the connections open minus its RSS before.

With --tls each connection is HTTPS (ALPN http/1.1, the certificate not
checked: only the server's memory is measured), a full handshake each.
"""

import resource
import socket
import ssl
import sys
import time


def read_response(sock: socket.socket) -> bool:
    """Reads one response head and its Content-Length body; False on failure."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--tls"]
    tls = None
    if "--tls" in sys.argv[1:]:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.set_alpn_protocols(["http/1.1"])
    host, port, count = args[0], int(args[1]), int(args[2])
    path = args[3] if len(args) > 3 else "/index.html"
    hold = float(args[4]) if len(args) > 4 else 60.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    deadline = time.monotonic() + 120  # opening must not take forever either
    sockets, failed = [], 0
    for _ in range(count):
        if time.monotonic() > deadline:
            failed += 1
            continue
        try:
            sock = socket.create_connection((host, port), timeout=5)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
            sock.sendall(request)
            if read_response(sock):
                sockets.append(sock)
            else:
                failed += 1
                sock.close()
        except OSError:
            failed += 1
    print(f"ready {len(sockets)} {failed}", flush=True)

    time.sleep(hold)
    for sock in sockets:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
