"""Differential check of py_web_ws against the websockets library (sans-I/O ClientProtocol).

Run by py_web_ws_diff_tests.erl as an Erlang port ({packet, 4}).  This side plays a real
client: it offers permessage-deflate with random parameters, sends random messages
(text with multi-byte characters, binary, empty, up to 200 KB, fragmented at random, with
pings between fragments) and feeds its bytes to the Erlang server in random pieces; the
server answers each piece with the events it decoded and the bytes it wrote.  Then the
server encodes random messages (optionally fragmented) and this client decodes them.
Every message must come out as it went in, on both sides.  Last, the close handshake.

Commands to Erlang (first byte):
  H <cfg> <request bytes>   open a connection; answer: response head bytes
  R <bytes>                 bytes from the client; answer: events + bytes written
  S <kind> <payload>        the app sends (kind t/b); answer: bytes written
  C <code:16> <reason>      the app closes; answer: bytes written
  D <text>                  done: this side's verdict ("ok N deflate=K": N connections, K
                            of them compressed; or the first failure)
"""

from __future__ import annotations

import random
import struct
import sys

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri


def send(msg: bytes) -> None:
    sys.stdout.buffer.write(struct.pack("!I", len(msg)) + msg)
    sys.stdout.buffer.flush()


def recv() -> bytes:
    head = sys.stdin.buffer.read(4)
    (n,) = struct.unpack("!I", head)
    return sys.stdin.buffer.read(n)


def call(msg: bytes) -> bytes:
    send(msg)
    return recv()


def parse_events(data: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    (count,) = struct.unpack("!I", data[:4])
    pos, events = 4, []
    for _ in range(count):
        kind = chr(data[pos])
        (n,) = struct.unpack("!I", data[pos + 1 : pos + 5])
        events.append((kind, data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return events, data[pos:]


def random_text(rng: random.Random, size: int) -> str:
    alphabet = "abc xyz 0123 κόσμε €𝄞 中文 \u00e9\u0000\U0010ffff\ud7ff\ue000"
    chars = [rng.choice(alphabet) for _ in range(size)]
    if rng.random() < 0.3:  # compressible too
        chars = list("".join(chars[: max(1, size // 20)]) * 20)[:size]
    return "".join(chars)


def random_size(rng: random.Random) -> int:
    return rng.choice([0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000,
                       rng.randint(0, 3000), rng.randint(0, 200_000)])


def offer(rng: random.Random) -> list[ClientPerMessageDeflateFactory]:
    if rng.random() < 0.15:
        return []
    return [ClientPerMessageDeflateFactory(
        server_no_context_takeover=rng.random() < 0.3,
        client_no_context_takeover=rng.random() < 0.3,
        server_max_window_bits=rng.choice([None, None, 8, 9, 10, 12, 15]),
        client_max_window_bits=rng.choice([True, None, 9, 11, 15]),
    )]


def server_config(rng: random.Random) -> bytes:
    """deflate on?, server/client no_context_takeover, server/client max window bits
    (0: unset), fragment size (0: none)."""
    return struct.pack(
        "!BBBBBI",
        rng.random() < 0.9,
        rng.random() < 0.2,
        rng.random() < 0.2,
        rng.choice([0, 0, 9, 11, 15]),
        rng.choice([0, 0, 9, 12]),
        rng.choice([0, 0, 1, 7, 1000, 65536]),
    )


def feed(rng: random.Random, client: ClientProtocol, events: list) -> bytes:
    """Client bytes to the server in random pieces; the server's events appended."""
    data = b"".join(client.data_to_send())
    written = b""
    pos = 0
    while pos < len(data):
        small = [1, 2, 3, 7, 100] if pos < 64 else []
        n = rng.choice(small + [1460, 16384, 65536, len(data)])
        got, out = parse_events(call(b"R" + data[pos : pos + n]))
        events.extend(got)
        written += out
        pos += n
    return written


def client_messages(client: ClientProtocol, data: bytes) -> list[tuple[str, bytes]]:
    """Whole messages the client decodes from server bytes."""
    client.receive_data(data)
    out, parts, kind = [], [], None
    for frame in client.events_received():
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            kind, parts = ("t" if frame.opcode is Opcode.TEXT else "b"), [frame.data]
        elif frame.opcode is Opcode.CONT:
            parts.append(frame.data)
        else:
            continue
        if frame.fin:
            out.append((kind, b"".join(parts)))
    return out


def connection(rng: random.Random, n_messages: int, tally: dict[str, int]) -> str | None:
    exts = offer(rng)
    client = ClientProtocol(parse_uri("ws://localhost/chat"), extensions=exts, max_size=None)
    client.send_request(client.connect())
    request = b"".join(client.data_to_send())
    response = call(b"H" + server_config(rng) + request)
    client.receive_data(response)
    [resp] = client.events_received()
    if not isinstance(resp, Response) or client.state is not State.OPEN:
        return f"handshake failed: {client.handshake_exc!r} for {response!r}"
    offered_8 = bool(exts) and exts[0].server_max_window_bits == 8
    if offered_8 and client.extensions:
        return "server_max_window_bits=8 was not declined"
    tally["deflate"] += bool(client.extensions)

    # client -> server
    for _ in range(n_messages):
        is_text = rng.random() < 0.6
        size = random_size(rng)
        payload = random_text(rng, size).encode() if is_text else rng.randbytes(size)
        cuts = sorted(rng.sample(range(len(payload) + 1), k=min(rng.choice([0, 0, 1, 3]), len(payload) + 1)))
        pieces = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
        for i, piece in enumerate(pieces):
            fin = i == len(pieces) - 1
            if i == 0:
                (client.send_text if is_text else client.send_binary)(piece, fin=fin)
            else:
                client.send_continuation(piece, fin=fin)
            if not fin and rng.random() < 0.3:
                client.send_ping(b"between")
        events: list = []
        written = feed(rng, client, events)
        want = [("t" if is_text else "b", payload)]
        if events != want:
            return f"server decoded {[(k, len(d)) for k, d in events]} for {want[0][0]} of {len(payload)} bytes"
        client.receive_data(written)  # pongs, if any
        client.events_received()

    # server -> client
    for _ in range(n_messages):
        is_text = rng.random() < 0.6
        size = random_size(rng)
        payload = random_text(rng, size).encode() if is_text else rng.randbytes(size)
        out = call(b"S" + (b"t" if is_text else b"b") + payload)
        got = client_messages(client, out)
        if got != [("t" if is_text else "b", payload)]:
            return f"client decoded {[(k, len(d)) for k, d in got]} for {len(payload)} bytes"

    # close handshake, started by either side
    code, reason = rng.choice([(1000, "bye ✓"), (1001, ""), (4321, "app")])
    want = [("c", struct.pack("!H", code) + reason.encode())]
    if rng.random() < 0.5:
        client.send_close(code, reason)
        events: list = []
        written = feed(rng, client, events)
        if events != want:
            return f"close event {events!r}"
        client.receive_data(written)
    else:
        client.receive_data(call(b"C" + want[0][1]))
        events = []
        if feed(rng, client, events) != b"" or events != want:
            return f"close event {events!r} after the server's close"
    client.receive_eof()  # the server closes the TCP connection first (RFC 6455 §7.1.1)
    if client.state is not State.CLOSED or client.close_rcvd is None \
            or client.close_rcvd.code != code:
        return f"client state {client.state!r} after the close handshake"
    return None


def main() -> None:
    seed, count, n_messages = (int(a) for a in sys.argv[1:4])
    rng = random.Random(seed)
    tally = {"deflate": 0}
    for i in range(count):
        failure = connection(rng, n_messages, tally)
        if failure:
            send(f"D connection {i} (seed {seed}): {failure}".encode())
            return
    send(f"D ok {count} deflate={tally['deflate']}".encode())


if __name__ == "__main__":
    main()
