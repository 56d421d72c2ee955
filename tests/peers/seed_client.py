# tests/peers/seed_client.py: a TCP client written like the seed's Python
# original, for interoperability tests.  Usage: seed_client.py [host] [port]
# Reads lines from stdin until EOF.
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8001

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((HOST, PORT))

while True:
    try:
        msg = input('Please input msg:')
    except EOFError:
        break
    s.send(msg.encode())
    data = s.recv(1024)
    print(data.decode(), flush=True)
s.close()
