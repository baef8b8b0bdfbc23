"""A Starlette app with a lifespan, for e2e/asgi_test.go (the test virtualenv
has Starlette).

The lifespan yields the state {"greeting", "startup_pid"}, which Starlette
hands to every request as request.state; at shutdown it writes "shutdown
complete" to $WHISK_TEST_SHUTDOWN_MARKER when that is set.

  /                  "Hello from Starlette"
  /state             JSON: the lifespan state as the request sees it, and the pid
  /echo              JSON {"bytes", "sha256"} of the request body
  /stream?n=K        a StreamingResponse of K lines from an async generator
  /file?path=PATH    a FileResponse (Starlette sends it by http.response.pathsend
                     when the server offers that extension)
  /ws                WebSocket: accepts with the first offered subprotocol,
                     answers each text message upper-cased, closes with 4000
                     "bye" on the text "bye"
"""

import asyncio
import contextlib
import hashlib
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from the lifespan", "startup_pid": os.getpid()}
    marker = os.environ.get("WHISK_TEST_SHUTDOWN_MARKER")
    if marker:
        with open(marker + ".tmp", "w") as f:
            f.write("shutdown complete")
        os.replace(marker + ".tmp", marker)


async def home(request):
    return PlainTextResponse("Hello from Starlette")


async def state(request):
    return JSONResponse({
        "greeting": request.state.greeting,
        "startup_pid": request.state.startup_pid,
        "pid": os.getpid(),
    })


async def echo(request):
    h = hashlib.sha256()
    n = 0
    async for chunk in request.stream():
        h.update(chunk)
        n += len(chunk)
    return JSONResponse({"bytes": n, "sha256": h.hexdigest()})


async def stream(request):
    n = int(request.query_params.get("n", "10"))

    async def lines():
        for i in range(1, n + 1):
            yield "line %d of %d\n" % (i, n)
            await asyncio.sleep(0)

    return StreamingResponse(lines(), media_type="text/plain")


async def file(request):
    return FileResponse(request.query_params["path"], media_type="application/octet-stream")


async def ws(websocket):
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=offered[0] if offered else None)
    try:
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=4000, reason="bye")
                return
            await websocket.send_text(text.upper())
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        Route("/", home),
        Route("/state", state),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/file", file),
        WebSocketRoute("/ws", ws),
    ],
    lifespan=lifespan,
)
