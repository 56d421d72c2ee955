# tests/bench/peers/py_asyncio.py - peer: Python's asyncio with Protocol
# callbacks (its fastest style).  Usage: python3 py_asyncio.py MODE PORT
# MODE echo: send back every byte; http: answer each request head (ended
# by a blank line) with the benchmark's fixed 200 reply, keep-alive.
# Port 0 picks one; prints "listening on 127.0.0.1:PORT".
import asyncio
import sys

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 13\r\n\r\nHello, World!")


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > 1 << 20:
            self.transport.pause_reading()   # peer not reading: stop taking more

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.tail = b""

    def data_received(self, data):
        buf = self.tail + data
        n = buf.count(b"\r\n\r\n")
        self.tail = buf[buf.rfind(b"\r\n\r\n") + 4:] if n else buf
        if n:
            self.transport.write(REPLY * n)


async def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo if mode == "echo" else Http,
                                      "127.0.0.1", port, backlog=1024)
    print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
