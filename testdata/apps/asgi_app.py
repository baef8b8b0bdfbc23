"""A plain ASGI 3 app (a coroutine function, no framework) for e2e/asgi_test.go.

Routes go by the path after root_path. Query parameters name the files the
app writes (markers a test polls for) or reads.

HTTP:
  /hello                 "hello, asgi"
  /echo                  reads the request body as it streams in; answers JSON
                         {"bytes", "sha256", "chunks" (non-empty http.request
                         messages), "messages"}; ?mark=PATH: writes PATH as soon
                         as the first non-empty chunk arrived
  /stream?n=K            K body messages "chunk I of K\\n" (more_body); ?gate=PATH:
                         after the first, waits up to 10 s for PATH to exist and
                         says "gave up waiting" in the next chunk if it did not
  /disconnect?mark=PATH&mode=receive
                         reads the body, writes PATH.started, then waits (up to
                         20 s) for the next receive(): writes its type to PATH
  /disconnect?mark=PATH&mode=send
                         streams a chunk every 20 ms (up to 20 s), writes
                         PATH.started after the first; when send() raises,
                         writes "raised NAME oserror=BOOL" to PATH
  /slow?s=SECONDS        asyncio.sleep (default 0.5); JSON {"pid", "start",
                         "end", "peak"}: peak is the most /slow requests this
                         process ever had in flight at once
  /pathsend?file=PATH    the file, by the http.response.pathsend extension
  /hang?mark=PATH        writes PATH.started, sleeps for an hour; on
                         asyncio.CancelledError writes "cancelled" to PATH
  /scope, /scope/...     the request's scope as JSON (bytes as latin-1 str;
                         "types" gives each top-level value's type name)
  /state                 the request's scope["state"] as JSON
  /pid                   the process id

WebSocket:
  /ws?mark=PATH          accepts with the first offered subprotocol and the
                         header x-whisk-ws: accepted; echoes text and binary
                         messages; the text "close:CODE:REASON" makes it close
                         with CODE and REASON; on websocket.disconnect writes
                         "disconnect CODE" to PATH
  /ws-deny               closes before accepting (the client gets 403)
  /ws-scope              accepts, sends the scope as JSON text, closes with 1000

Lifespan: startup puts {"started_by": "asgi_app", "startup_pid": PID} into
the state; shutdown writes "shutdown" to $WHISK_TEST_SHUTDOWN_MARKER if set.
"""

import asyncio
import hashlib
import json
import os
import time
import urllib.parse

_slow = {"inflight": 0, "peak": 0}


def _query(scope):
    q = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[0] for k, v in q.items()}


def _write(path, text):
    if not path:
        return
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
    except FileNotFoundError:
        return  # the test that asked for it has ended and removed its directory
    os.replace(tmp, path)  # a poller never sees a half-written file


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


def _scope_json(scope):
    out = {k: _jsonable(v) for k, v in scope.items()}
    out["types"] = {k: type(v).__name__ for k, v in scope.items()}
    headers = scope.get("headers") or []
    out["header_pairs_are_bytes"] = all(
        isinstance(h, (tuple, list)) and len(h) == 2 and type(h[0]) is bytes and type(h[1]) is bytes
        for h in headers)
    return out


async def _respond(send, status, body, content_type=b"text/plain; charset=utf-8", headers=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] + list(headers),
    })
    await send({"type": "http.response.body", "body": body})


async def _json(send, obj, status=200):
    await _respond(send, status, json.dumps(obj, sort_keys=True), b"application/json")


async def _drain(receive):
    """Reads the request body to its end; returns (body, non-empty chunks, messages)."""
    parts, chunks, messages = [], 0, 0
    while True:
        msg = await receive()
        messages += 1
        if msg["type"] != "http.request":
            raise RuntimeError("unexpected %r while reading the body" % msg["type"])
        if msg.get("body"):
            parts.append(msg["body"])
            chunks += 1
        if not msg.get("more_body", False):
            return b"".join(parts), chunks, messages


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            state = scope.get("state")
            if state is not None:
                state["started_by"] = "asgi_app"
                state["startup_pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            _write(os.environ.get("WHISK_TEST_SHUTDOWN_MARKER"), "shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope, receive, send):
    path = scope["path"][len(scope.get("root_path", "")):]
    q = _query(scope)

    if path == "/hello":
        await _respond(send, 200, "hello, asgi")

    elif path == "/pid":
        await _respond(send, 200, str(os.getpid()))

    elif path == "/echo":
        h = hashlib.sha256()
        n = chunks = messages = 0
        mark = q.get("mark")
        while True:
            msg = await receive()
            messages += 1
            if msg["type"] != "http.request":
                return  # the client left
            body = msg.get("body", b"")
            if body:
                h.update(body)
                n += len(body)
                chunks += 1
                if chunks == 1:
                    _write(mark, "first chunk: %d bytes" % len(body))
            if not msg.get("more_body", False):
                break
        await _json(send, {"bytes": n, "sha256": h.hexdigest(), "chunks": chunks, "messages": messages})

    elif path == "/stream":
        await _drain(receive)
        n = int(q.get("n", "3"))
        gate = q.get("gate")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(1, n + 1):
            chunk = b"chunk %d of %d\n" % (i, n)
            if i == 2 and gate:
                deadline = time.monotonic() + 10
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                if not os.path.exists(gate):
                    chunk = b"gave up waiting for the gate; " + chunk
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    elif path == "/disconnect":
        mark = q["mark"]
        await _drain(receive)
        if q.get("mode", "receive") == "receive":
            _write(mark + ".started", "waiting in receive()")
            try:
                msg = await asyncio.wait_for(receive(), 20)
            except asyncio.TimeoutError:
                _write(mark, "timeout: receive() returned nothing in 20 s")
                await _respond(send, 500, "no disconnect")
                return
            _write(mark, msg["type"])
            if msg["type"] != "http.disconnect":
                await _respond(send, 500, "unexpected " + msg["type"])
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        deadline = time.monotonic() + 20
        first = True
        try:
            while time.monotonic() < deadline:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                if first:
                    _write(mark + ".started", "streaming")
                    first = False
                await asyncio.sleep(0.02)
        except BaseException as e:  # noqa: B902: recorded, then raised again
            _write(mark, "raised %s oserror=%s" % (type(e).__name__, isinstance(e, OSError)))
            raise
        _write(mark, "timeout: send() never raised in 20 s")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    elif path == "/slow":
        await _drain(receive)
        start = time.time()
        _slow["inflight"] += 1
        _slow["peak"] = max(_slow["peak"], _slow["inflight"])
        try:
            await asyncio.sleep(float(q.get("s", "0.5")))
        finally:
            _slow["inflight"] -= 1
        await _json(send, {"pid": os.getpid(), "start": start, "end": time.time(), "peak": _slow["peak"]})

    elif path == "/pathsend":
        await _drain(receive)
        if "http.response.pathsend" not in (scope.get("extensions") or {}):
            await _respond(send, 500, "no http.response.pathsend in scope['extensions']")
            return
        name = q["file"]
        size = os.stat(name).st_size
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
            (b"x-sent-by", b"pathsend"),
        ]})
        await send({"type": "http.response.pathsend", "path": name})

    elif path == "/hang":
        mark = q.get("mark")
        await _drain(receive)
        _write(mark + ".started" if mark else None, "hanging")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            _write(mark, "cancelled")
            raise
        await _respond(send, 200, "woke up after an hour")

    elif path == "/scope" or path.startswith("/scope/"):
        await _drain(receive)
        await _json(send, _scope_json(scope))

    elif path == "/state":
        await _drain(receive)
        await _json(send, _jsonable(scope.get("state")))

    else:
        await _drain(receive)
        await _respond(send, 404, "no route " + path)


async def websocket(scope, receive, send):
    path = scope["path"][len(scope.get("root_path", "")):]
    q = _query(scope)
    msg = await receive()
    if msg["type"] != "websocket.connect":
        raise RuntimeError("first websocket message is %r" % msg["type"])

    if path == "/ws-deny":
        await send({"type": "websocket.close", "code": 1000})
        return

    if path == "/ws-scope":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_scope_json(scope), sort_keys=True)})
        await send({"type": "websocket.close", "code": 1000, "reason": "scope sent"})
        return

    if path != "/ws":
        await send({"type": "websocket.close", "code": 1000})
        return

    accept = {"type": "websocket.accept", "headers": [(b"x-whisk-ws", b"accepted")]}
    offered = scope.get("subprotocols") or []
    if offered:
        accept["subprotocol"] = offered[0]
    await send(accept)
    mark = q.get("mark")
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            _write(mark, "disconnect %s" % msg.get("code", 1005))
            return
        if msg["type"] != "websocket.receive":
            raise RuntimeError("unexpected %r" % msg["type"])
        text = msg.get("text")
        if text is not None:
            if text.startswith("close:"):
                _, code, reason = text.split(":", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
                return
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
    elif kind == "http":
        await http(scope, receive, send)
    elif kind == "websocket":
        await websocket(scope, receive, send)
    else:
        raise RuntimeError("unknown scope type %r" % kind)
