# tests/bench/peers/py_selectors.py - peer: a readiness loop written by
# hand on Python's selectors (epoll), no framework.
# Usage: python3 py_selectors.py MODE PORT   (see py_asyncio.py for MODE)
import selectors
import socket
import sys

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 13\r\n\r\nHello, World!")

mode, port = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
srv = socket.create_server(("127.0.0.1", port), backlog=1024)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
pending = {}   # conn -> bytes the peer has not taken yet (then we stop reading)
tails = {}     # conn -> the start of an unfinished request head (http)
print("listening on 127.0.0.1:%d" % srv.getsockname()[1], flush=True)


def drop(conn):
    sel.unregister(conn)
    pending.pop(conn, None)
    tails.pop(conn, None)
    conn.close()


def send(conn, data):
    try:
        n = conn.send(data)
    except BlockingIOError:
        n = 0
    except OSError:
        return drop(conn)
    if n < len(data):
        pending[conn] = data[n:]
        sel.modify(conn, selectors.EVENT_WRITE)


def readable(conn):
    try:
        data = conn.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        return drop(conn)
    if mode == "echo":
        return send(conn, data)
    buf = tails.get(conn, b"") + data
    n = buf.count(b"\r\n\r\n")
    tails[conn] = buf[buf.rfind(b"\r\n\r\n") + 4:] if n else buf
    if n:
        send(conn, REPLY * n)


def writable(conn):
    data = pending.pop(conn)
    sel.modify(conn, selectors.EVENT_READ)
    send(conn, data)


while True:
    for key, events in sel.select():
        sock = key.fileobj
        if sock is srv:
            try:
                while True:
                    conn, _ = srv.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
            except (BlockingIOError, ConnectionAbortedError):
                pass
        elif events & selectors.EVENT_WRITE:
            writable(sock)
        else:
            readable(sock)
