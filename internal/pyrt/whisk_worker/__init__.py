"""whisk_worker: whisk's Python worker runtime (stdlib only, CPython 3.9+).

The Go front embeds this package, extracts it, and starts one worker process
per slot group member; each serves WSGI requests that arrive as frames on unix
socket channels (docs/protocol.md). Modules, one per concern:

- wire:   frame format, encoders, the buffered frame reader/writer (Conn)
- wsgi:   environ, wsgi.input, start_response, responses, credits, cancel
- loader: importing the app named by APP, with errors that name the fix
- main:   arguments, sys.path, the control channel (HELLO, CHANNEL, STOP)
- preload: the fork server: import the app once, fork the workers (FORK, EXITED)
"""

from .wsgi import RequestTimeout  # noqa: E402,F401: apps may catch it (raised when a request times out)
