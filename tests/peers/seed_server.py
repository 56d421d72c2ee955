# tests/peers/seed_server.py: a TCP server written like the seed's Python
# original, for interoperability tests.  Usage: seed_server.py [host] [port]
# (port 0: any free port; the start line shows the real one).
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8001

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((HOST, PORT))
s.listen(5)

print('Server start at: %s:%s' % s.getsockname(), flush=True)
print('wait for connection...', flush=True)

while True:
    conn, addr = s.accept()
    print('Connected by ', '%s:%s' % addr, flush=True)
    while True:
        data = conn.recv(1024)
        if not data:
            break
        print(data.decode(), flush=True)
        conn.send(b'server received you message.')
    conn.close()
