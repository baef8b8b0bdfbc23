"""ASGI apps for the ASGI tests (stdlib only).

app: an `async def` app with lifespan support. Its startup puts
{"started_in": pid, "db": "ready"} in the lifespan state; the environment
variable ASGI_STARTUP=fail makes it send lifespan.startup.failed, =raise
makes it raise after receiving lifespan.startup. Shutdown writes
"lifespan shutdown ran" to stderr (and fails when ASGI_SHUTDOWN=fail).

HTTP routes:
/               "Hello, world!" in one body
/scope          the scope as JSON (bytes as latin-1 text)
/state-mutate   sets scope["state"]["mutated"]; answers the state
/echo           reads the body; answers {"size", "sha256", "chunks"}
/stream?n=&size=&delay=  n body messages of size bytes, more_body
/big?size=      one body message of size bytes
/file?path=     http.response.pathsend
/disconnect     sends a first block, waits for http.disconnect, then sends again
/stuck          awaits for an hour in wait_forever (the timeout test)
/sleep?s=       asyncio.sleep(s), counting the requests in flight
/raise          raises ValueError("boom")
/incomplete     http.response.start, then returns
/nothing        returns at once
/executor?s=    the name of the default executor's thread that ran a function (sleeping s)
/events         the events recorded so far (and clears them)

WebSocket routes:
/ws             accepts (the last offered subprotocol, and header x-app: 1) and echoes;
                a text "close:CODE" makes it close with CODE and reason "bye";
                ?deny closes before accept (403), ?http answers a 401 response,
                ?raise raises after accept, ?once sends "hi" and returns,
                ?wait awaits in wait_forever before accept, ?scope sends the scope as JSON,
                ?unguarded lets the ClientDisconnected of a send after the client's close out.

handler: an instance of a class with `async def __call__`, which refuses the
lifespan scope before calling receive (as Django's ASGIHandler does).
"""

import asyncio
import hashlib
import json
import os
import sys
import threading
import time

events = []
inflight = [0, 0]  # now, most at once


def query(scope):
    q = scope.get("query_string", b"").decode("latin-1")
    return dict(p.split("=", 1) if "=" in p else (p, "") for p in q.split("&") if p)


async def respond(send, body, status=200, content_type=b"text/plain"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


async def lifespan(scope, receive, send):
    message = await receive()
    assert message["type"] == "lifespan.startup", message
    mode = os.environ.get("ASGI_STARTUP", "")
    if mode == "fail":
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    if mode == "raise":
        raise RuntimeError("db down")
    scope["state"]["started_in"] = os.getpid()
    scope["state"]["db"] = "ready"
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown", message
    sys.stderr.write("lifespan shutdown ran (%d in flight)\n" % inflight[0])
    if os.environ.get("ASGI_SHUTDOWN") == "fail":
        await send({"type": "lifespan.shutdown.failed", "message": "cannot flush"})
    else:
        await send({"type": "lifespan.shutdown.complete"})


async def wait_forever():
    await asyncio.sleep(3600)


async def http(scope, receive, send):
    path = scope["path"]
    q = query(scope)
    if path == "/":
        await respond(send, b"Hello, world!")
    elif path == "/scope":
        await respond(send, json.dumps(jsonable(scope)).encode(), content_type=b"application/json")
    elif path == "/state-mutate":
        scope["state"]["mutated"] = True
        await respond(send, json.dumps(scope["state"]).encode())
    elif path == "/echo":
        h = hashlib.sha256()
        size = chunks = 0
        while True:
            message = await receive()
            assert message["type"] == "http.request", message
            h.update(message["body"])
            size += len(message["body"])
            chunks += 1
            if not message.get("more_body"):
                break
        await respond(send, json.dumps({"size": size, "sha256": h.hexdigest(), "chunks": chunks}).encode())
    elif path == "/stream":
        n, size, delay = int(q.get("n", "3")), int(q.get("size", "5")), float(q.get("delay", "0"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            if delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": bytes([97 + i % 26]) * size, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        size = int(q["size"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": bytes(i % 251 for i in range(size))})
        events.append("big sent")
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": q["path"]})
    elif path == "/disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        message = await receive()  # the body (empty, inline)
        events.append(message["type"])
        message = await receive()
        events.append(message["type"])
        try:
            await send({"type": "http.response.body", "body": b"second", "more_body": True})
        except OSError as e:
            events.append(type(e).__name__)
    elif path == "/stuck":
        try:
            await wait_forever()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
    elif path == "/sleep":
        inflight[0] += 1
        inflight[1] = max(inflight)
        try:
            await asyncio.sleep(float(q.get("s", "0.2")))
        finally:
            inflight[0] -= 1
        await respond(send, b"slept")
    elif path == "/raise":
        raise ValueError("boom")
    elif path == "/incomplete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
    elif path == "/nothing":
        return
    elif path == "/executor":
        def work():
            time.sleep(float(q.get("s", "0")))
            return threading.current_thread().name

        name = await asyncio.get_running_loop().run_in_executor(None, work)
        await respond(send, name.encode())
    elif path == "/events":
        body = json.dumps({"events": events[:], "most_in_flight": inflight[1]}).encode()
        del events[:]
        inflight[1] = 0
        await respond(send, body, content_type=b"application/json")
    else:
        await respond(send, b"not found", status=404)


async def websocket(scope, receive, send):
    q = query(scope)
    message = await receive()
    assert message["type"] == "websocket.connect", message
    if "deny" in q:
        await send({"type": "websocket.close"})
        return
    if "wait" in q:
        await wait_forever()
    if "http" in q:
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                "headers": [(b"x-app", b"1")]})
    if "raise" in q:
        raise ValueError("ws boom")
    if "once" in q:
        await send({"type": "websocket.send", "text": "hi"})
        return
    if "scope" in q:
        await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            events.append(["disconnect", message["code"], message.get("reason", "")])
            if "unguarded" in q:
                await send({"type": "websocket.send", "text": "too late"})  # raises ClientDisconnected
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as e:
                events.append(type(e).__name__)
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
    elif kind == "http":
        await http(scope, receive, send)
    else:
        await websocket(scope, receive, send)


class Handler:
    """An ASGI app as an instance whose __call__ is a coroutine function, without lifespan."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("Django can only handle ASGI/HTTP connections, not %s." % scope["type"])
        body = json.dumps({"app": "handler", "has_state": "state" in scope}).encode()
        await respond(send, body, content_type=b"application/json")


handler = Handler()


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]
