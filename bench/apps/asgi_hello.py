"""ASGI app for the ASGI scenarios (asgi-hello, ws-echo).

HTTP, any path -> 13-byte text/plain body ("Hello, World!"), the same answer
                  as the WSGI hello.py.
WebSocket      -> accepted, then every message (text or bytes) is sent back
                  as it came, until the client closes.
Lifespan       -> startup and shutdown acknowledged (daphne does not send them).

Plain ASGI 3, no framework. Served as `asgi_hello:application` (also
exported as `app`).
"""

BODY = b"Hello, World!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
RESPONSE = {"type": "http.response.body", "body": BODY}
ACCEPT = {"type": "websocket.accept"}


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await send(START)
        await send(RESPONSE)
    elif kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def websocket_echo(receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send(ACCEPT)
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


app = application
