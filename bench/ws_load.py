"""The client side of `make bench`'s ws phase (run by bench/run.py in the bench venv):
websockets' asyncio client on uvloop, 127.0.0.1 only, bounded in time and count.

    ws_load.py echo PORT CONNS SECONDS          -> {"msgs": N, "seconds": S}
    ws_load.py broadcast PORT CLIENTS MESSAGES  -> {"delivered": N, "seconds": S}
    ws_load.py idle PORT COUNT HOLD_S           -> prints "open", holds, then closes
"""

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

TEXT = "x" * 1024


async def echo(port: int, conns: int, seconds: float) -> dict:
    stop = time.monotonic() + seconds
    counts = [0] * conns

    async def one(i: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/echo", compression=None, max_queue=None) as ws:
            while time.monotonic() < stop:
                await ws.send(TEXT)
                await ws.recv()
                counts[i] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(conns)))
    return {"msgs": sum(counts), "seconds": time.monotonic() - t0}


async def broadcast(port: int, clients: int, messages: int) -> dict:
    sockets = [await connect(f"ws://127.0.0.1:{port}/room", compression=None, max_queue=None)
               for _ in range(clients)]
    await asyncio.sleep(0.2)
    t0 = time.monotonic()

    async def drain(ws) -> int:
        for _ in range(messages):
            await ws.recv()
        return messages

    readers = [asyncio.ensure_future(drain(ws)) for ws in sockets]
    for i in range(messages):
        await sockets[0].send(f"{i:08d}" + TEXT[:1016])
    delivered = sum(await asyncio.wait_for(asyncio.gather(*readers), 120))
    elapsed = time.monotonic() - t0
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"delivered": delivered, "seconds": elapsed}


async def idle(port: int, count: int, hold: float) -> dict:
    sockets = []
    for i in range(0, count, 200):
        sockets += await asyncio.gather(*(
            connect(f"ws://127.0.0.1:{port}/echo", compression=None, ping_interval=None,
                    open_timeout=60)
            for _ in range(min(200, count - i))))
    print("open", flush=True)
    await asyncio.sleep(hold)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"opened": len(sockets)}


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    kind, port, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    fn = {"echo": echo, "broadcast": lambda p, x, y: broadcast(p, x, int(y)), "idle": idle}[kind]
    print(json.dumps(asyncio.run(fn(port, a, b))), flush=True)
