"""Run a program with a listening socket it inherits, as systemd's socket
activation or circus do: with_fd.py PROGRAM ARGS..., where an argument FD is
replaced by the descriptor's number. Prints the socket's port first."""

import os
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(16)
os.set_inheritable(sock.fileno(), True)
print(f"with_fd: port {sock.getsockname()[1]}", flush=True)
program = sys.argv[1]
args = [str(sock.fileno()) if a == "FD" else a for a in sys.argv[2:]]
os.execv(program, [program, *args])
