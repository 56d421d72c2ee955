#!/usr/bin/env python3
"""A TLS client that makes its server wait to write, for tests/tls_load_spec.lua.

    tls_slow_reader.py PORT

Connects to 127.0.0.1:PORT with a small receive buffer, sends its
ClientHello (Python's ssl over memory BIOs, so it decides when to read),
prints "hello sent" and reads nothing until a line comes on stdin: the
server's flight stays in the server's send buffer meanwhile.  Then it
finishes the handshake, sends "hello\\n", prints "done" and waits for EOF
on stdin.  Every socket has a 10 s timeout, so this never hangs.
"""
import socket
import ssl
import sys


def main(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)   # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")

    def flush():
        data = outgoing.read()
        if data:
            sock.sendall(data)

    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    flush()
    print("hello sent", flush=True)
    sys.stdin.readline()
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            data = sock.recv(65536)
            if not data:
                sys.exit("the server closed during the handshake")
            incoming.write(data)
    tls.write(b"hello\n")
    flush()
    print("done", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main(int(sys.argv[1]))
