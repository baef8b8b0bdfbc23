"""An ASGI 3 app that is an instance whose __call__ is a coroutine function
(as Django's ASGIHandler, Starlette and FastAPI are): whisk's interface
auto-detection must serve it as ASGI. Answers "class app PATH"; no lifespan
support (it raises for a lifespan scope before calling receive, as Django
does)."""


class App:
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("this app only speaks http, not %s" % scope["type"])
        while True:
            msg = await receive()
            if not msg.get("more_body", False):
                break
        body = ("class app %s" % scope["path"]).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


application = App()
