#!/usr/bin/env python3
"""Hold N server-sent event streams open and count the events that arrive.

Usage: event_clients.py HOST PORT N HOLD_SECONDS [PATH]

Opens N connections (non-blocking, a few hundred in flight at a time), sends
`GET PATH` (default /api/events) on each, and reads them all from one thread
with selectors. Once every stream has answered `200` (or failed), it prints
"ready OPEN FAILED" on one line, then keeps reading for HOLD_SECONDS and prints
"held EVENTS STREAMS SECONDS": the events received in that window, the streams
still open at its end, and its measured length. Used by bench-handlers.sh to
measure a server's memory per stream (RSS at "ready" minus RSS before) and its
CPU per event (CPU time over the window divided by EVENTS).
"""

import errno
import resource
import selectors
import socket
import sys
import time

OPENING = 500  # connections being opened at once


def main() -> int:
    host, port, count, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    path = sys.argv[5] if len(sys.argv) > 5 else "/api/events"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    # Per socket: "connecting", "head" (request sent, waiting for the status) or "stream".
    state: dict[socket.socket, str] = {}
    head: dict[socket.socket, bytes] = {}
    tail: dict[socket.socket, bytes] = {}
    started, failed, streaming, pending, events = 0, 0, 0, 0, 0
    counting = False

    def drop(sock: socket.socket) -> None:
        nonlocal failed, streaming, pending
        if state.get(sock) == "stream":
            streaming -= 1
        else:
            failed += 1
            pending -= 1
        selector.unregister(sock)
        del state[sock]
        sock.close()

    def count_events(sock: socket.socket, data: bytes) -> None:
        # An event ends with a blank line; keep the last bytes to see one split across reads.
        nonlocal events
        joined = tail.get(sock, b"") + data
        if counting:
            events += joined.count(b"\n\n")
        tail[sock] = joined[-1:]

    deadline = time.monotonic() + 300
    while started < count or pending > 0:
        while started < count and pending < OPENING:
            sock = socket.socket()
            sock.setblocking(False)
            err = sock.connect_ex((host, port))
            started += 1
            if err not in (0, errno.EINPROGRESS):
                failed += 1
                sock.close()
                continue
            state[sock] = "connecting"
            pending += 1
            selector.register(sock, selectors.EVENT_WRITE)
        if time.monotonic() > deadline:
            for sock in [s for s, st in state.items() if st != "stream"]:
                drop(sock)
            break
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            if state[sock] == "connecting":
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(sock)
                    continue
                sock.send(request)
                state[sock] = "head"
                head[sock] = b""
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(sock)
            elif state[sock] == "head":
                head[sock] += data
                if b"\r\n\r\n" in head[sock]:
                    if not head[sock].startswith(b"HTTP/1.1 200"):
                        drop(sock)
                        continue
                    state[sock] = "stream"
                    streaming += 1
                    pending -= 1
                    count_events(sock, head.pop(sock).split(b"\r\n\r\n", 1)[1])
            else:
                count_events(sock, data)
    print(f"ready {streaming} {failed}", flush=True)

    counting = True
    began = time.monotonic()
    while time.monotonic() - began < hold:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                count_events(sock, data)
            else:
                drop(sock)
    print(f"held {events} {streaming} {time.monotonic() - began:.2f}", flush=True)
    for sock in list(state):
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
