"""The Autobahn runs' upstream: the `websockets` library's echo server with permessage-deflate,
no message size limit, and (from the environment) no fragment cap, so that the 9.3/9.4 cases
(4 MiB in 64-byte fragments) are not refused by the echo itself. Usage: echo.py PORT"""

import asyncio
import os
import sys

os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(1 << 20))

from websockets.asyncio.server import serve  # noqa: E402 (reads the variable on import)
from websockets.exceptions import ConnectionClosed  # noqa: E402


async def echo(ws) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, max_size=None, max_queue=None,
                     compression="deflate"):
        print("ready", flush=True)
        await asyncio.Future()


asyncio.run(main(int(sys.argv[1])))
