# tests/bench/echo.py - reference only: the same task-per-connection echo
# server in Python's asyncio, for run.sh --python.
# Usage: python3 tests/bench/echo.py [port]; prints "listening on 127.0.0.1:PORT".
import asyncio
import sys


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(echo, "127.0.0.1", port)
    print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
