"""whisk_worker: whisk's Python worker runtime (stdlib only, CPython 3.9+).

The Go front embeds this package, extracts it, and starts one worker process
per slot group member; each serves WSGI or ASGI requests that arrive as frames
on unix socket channels (docs/protocol.md). Modules, one per concern:

- wire:   frame format, encoders, the buffered frame reader/writer (Conn)
- wsgi:   environ, wsgi.input, start_response, responses, credits, cancel
- asgi:   the event loop, lifespan, many streams per channel, HTTP and WebSocket
- loader: importing the app named by APP, with errors that name the fix; WSGI or ASGI
- main:   arguments, sys.path, the control channel (HELLO, CHANNEL, STOP)
- preload: the fork server: import the app once, fork the workers (FORK, EXITED)
"""

# Apps may catch these: RequestTimeout (WSGI: the request timed out), ClientDisconnected
# (send or write after the client left).
from .wsgi import ClientDisconnected, RequestTimeout  # noqa: E402,F401
