"""An ASGI app whose lifespan startup fails, as $WHISK_TEST_LIFESPAN says:

  failed   it sends lifespan.startup.failed with the message
           "whisk-e2e-lifespan-failed"
  raise    it raises RuntimeError("whisk-e2e-lifespan-raised") after it
           received lifespan.startup

whisk must report it like an import failure and exit 3, without serving.
"""

import os


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        msg = await receive()
        assert msg["type"] == "lifespan.startup", msg
        if os.environ.get("WHISK_TEST_LIFESPAN") == "raise":
            raise RuntimeError("whisk-e2e-lifespan-raised")
        await send({"type": "lifespan.startup.failed", "message": "whisk-e2e-lifespan-failed"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"this app must never serve"})
