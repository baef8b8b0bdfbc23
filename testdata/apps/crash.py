"""Workers that die or hang mid-request.

  /pid          the worker's pid
  /exit         os._exit(1)
  /segv         os.kill(os.getpid(), SIGSEGV)
  /segv-ctypes  ctypes.string_at(0): a real segmentation fault
  /sigkill      os.kill(os.getpid(), SIGKILL)
  /sleep?s=N    sleeps N seconds, then answers "slept"

os.kill() to the own process is delivered asynchronously, maybe to another
thread: the app then waits for the signal to take effect instead of
answering. Should the process survive, the answer says so.
"""

import ctypes
import os
import signal
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/exit":
        os._exit(1)
    if path == "/segv":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)
        return _answer(start_response, b"survived SIGSEGV")
    if path == "/segv-ctypes":
        ctypes.string_at(0)
        return _answer(start_response, b"survived a NULL dereference")
    if path == "/sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
        return _answer(start_response, b"survived SIGKILL")
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"].partition("s=")[2]))
        return _answer(start_response, b"slept")
    return _answer(start_response, str(os.getpid()).encode())


def _answer(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
