"""A small Starlette app (the test virtualenv has Starlette) for test_asgi.RealFrameworkTest.
Its lifespan raises RuntimeError("no db") when STARTUP=raise.

  /state        the lifespan state as request.state sees it, and the pid
  /file?path=   FileResponse (Starlette uses http.response.pathsend when offered)
  /endless      a StreamingResponse that never ends (the client leaves)
  /ws           WebSocket: echoes text upper-cased; "bye" closes with 4000
"""

import asyncio
import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute


@contextlib.asynccontextmanager
async def lifespan(app):
    if os.environ.get("STARTUP") == "raise":
        raise RuntimeError("no db")
    yield {"greeting": "hi", "startup_pid": os.getpid()}


async def state(request):
    return JSONResponse({"greeting": request.state.greeting, "startup_pid": request.state.startup_pid,
                         "pid": os.getpid()})


async def file(request):
    return FileResponse(request.query_params["path"])


async def endless(request):
    async def blocks():
        while True:
            yield b"x" * 1000
            await asyncio.sleep(0.01)

    return StreamingResponse(blocks())


async def ws(websocket):
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close(4000, "bye")
            return
        await websocket.send_text(text.upper())


app = Starlette(lifespan=lifespan, routes=[
    Route("/state", state), Route("/file", file), Route("/endless", endless), WebSocketRoute("/ws", ws),
])
