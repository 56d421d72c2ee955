# tests/bench/tls_asyncio.py - the Python side of tls_bench.py: asyncio
# with its ssl support, the same answers as tls_server.lua (GET /big: the
# bulk bytes; else the 13-byte hello; then close).
# Usage: python3 tls_asyncio.py CERT KEY BULK_BYTES
import asyncio
import ssl
import sys

CHUNK = b"x" * (1 << 20)


async def serve(reader, writer):
    request = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    if request.startswith(b"GET /big "):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % BULK)
        left = BULK
        while left > 0:
            writer.write(CHUNK[:min(left, len(CHUNK))])
            left -= len(CHUNK)
            await writer.drain()
    elif request:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
    await writer.drain()
    writer.close()


async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    ctx.num_tickets = 0  # as tls_bench.py's nginx: ssl_session_tickets off
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx, backlog=1024)
    print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


BULK = int(sys.argv[3])
asyncio.run(main())
