"""A WebSocket client nobody here wrote (the `websockets` package) talking
to a servicemock. Prints one JSON line of what it saw.

Usage:
  websocket_client.py ADDR PAUSE     reports, a tree, an echo, an error, a
                                     ping, then a binary message and an
                                     oversized one (each closes a socket);
                                     waits PAUSE seconds between messages
  websocket_client.py ADDR --until-closed
                                     sends "/" every 100 ms until the server
                                     closes the socket
  websocket_client.py ADDR --attempts
                                     opens /chat twice with one x-request-id
                                     (a report from each: which attempt it
                                     was), then once with x-mock-reset: true
                                     (how the opening failed)
  websocket_client.py ADDR --bad-utf8
                                     a text frame that is not UTF-8, written
                                     by hand (no library sends one): prints
                                     the close code and reason the server sent
"""

import asyncio
import base64
import json
import os
import socket
import struct
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def closed_by(ws):
    try:
        await ws.recv()
    except ConnectionClosed as e:
        return [e.rcvd.code, e.rcvd.reason] if e.rcvd else None
    return "not closed"


async def tour(addr, pause):
    out = {}
    async with connect(f"ws://{addr}/chat", max_size=None) as ws:
        await ws.send("/@b/x")
        out["report"] = json.loads(await ws.recv())
        await asyncio.sleep(pause)
        await ws.send("/@b/y?view=tree")
        out["tree"] = await ws.recv()
        await ws.send("hello")
        out["echo"] = await ws.recv()
        await ws.send("/@@")
        out["error"] = await ws.recv()
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        out["pong"] = True
        await ws.send(b"\x00binary")
        out["binary"] = await closed_by(ws)
    async with connect(f"ws://{addr}/big", max_size=None) as ws:
        await ws.send("x" * (70 * 1024))
        out["big"] = await closed_by(ws)
    return out


async def until_closed(addr):
    sent = 0
    async with connect(f"ws://{addr}/long") as ws:
        print(json.dumps({"open": True}), flush=True)
        try:
            while True:
                await ws.send("/")
                await ws.recv()
                sent += 1
                await asyncio.sleep(0.1)
        except ConnectionClosed as e:
            code = [e.rcvd.code, e.rcvd.reason] if e.rcvd else None
            return {"answered": sent, "closed": code}


async def attempts(addr):
    out = {"attempts": []}
    same = {"x-request-id": "ws-attempts-1"}
    for _ in range(2):
        async with connect(f"ws://{addr}/chat", additional_headers=same) as ws:
            await ws.send("/")
            out["attempts"].append(json.loads(await ws.recv())["Attempt"])
    try:
        reset = {"x-mock-reset": "true"}
        async with connect(f"ws://{addr}/chat", additional_headers=reset) as ws:
            out["reset"] = "opened"
    except Exception as e:  # the opening itself fails: no handshake answer
        out["reset"] = type(e).__name__
    return out


def bad_utf8(addr):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /raw HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = b"\xff\xfe not utf-8"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        frame = sock.recv(2)
        assert frame[0] == 0x88, frame  # a close frame
        body = sock.recv(frame[1] & 0x7F)
        code = struct.unpack("!H", body[:2])[0]
        return {"closed": [code, body[2:].decode()]}


def main() -> int:
    addr, mode = sys.argv[1], sys.argv[2]
    if mode == "--until-closed":
        out = asyncio.run(until_closed(addr))
    elif mode == "--attempts":
        out = asyncio.run(attempts(addr))
    elif mode == "--bad-utf8":
        out = bad_utf8(addr)
    else:
        out = asyncio.run(tour(addr, float(mode)))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
