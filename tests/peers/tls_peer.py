#!/usr/bin/env python3
"""A TLS peer written with Python's ssl module, for tests/tls_interop_spec.lua.

    tls_peer.py server CERT KEY [CAFILE]   one connection: echo lines until EOF;
                                           with CAFILE, require a client
                                           certificate and print its CN
    tls_peer.py client PORT CAFILE [HOST]  send two lines, print the replies,
                                           the version and the peer's CN

The server prints "listening on 127.0.0.1:PORT" first.  Every socket has
a 5 s timeout, so a peer that misbehaves ends this program, never hangs it.
"""
import socket
import ssl
import sys


def serve(cert, key, cafile=None):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if cafile:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(5)
        print("listening on 127.0.0.1:%d" % srv.getsockname()[1], flush=True)
        conn, _ = srv.accept()
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            print("version", tls.version(), flush=True)
            if cafile:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                print("client", subject["commonName"], flush=True)
            with tls.makefile("rwb") as f:
                for line in f:
                    f.write(line)
                    f.flush()
            tls.unwrap()
    print("done", flush=True)


def client(port, cafile, host="localhost"):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            f = tls.makefile("rwb")
            for line in (b"first line\n", b"second line\n"):
                f.write(line)
                f.flush()
                print("reply", f.readline().decode().rstrip("\n"), flush=True)
            print("version", tls.version(), flush=True)
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            print("server", subject["commonName"], flush=True)
            f.close()


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](*sys.argv[2:])
