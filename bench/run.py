#!/usr/bin/env python3
"""whisk benchmark orchestrator (stdlib only). Normally started by bench/run.sh,
which installs wrk/Apache/mod_wsgi/nginx, the bench virtualenvs and builds
whisk first; run this directly only when that is already done.

Usage:
    python3 bench/run.py [--servers a,b] [--scenarios x,y] [--duration S]
                         [--runs N] [--warmup S] [--no-docs] [--no-store] [--fresh]

For every (scenario, server) pair -- WSGI servers for the app scenarios,
whisk and nginx for the static-file ones, whisk alone for the ceiling,
whisk --preload as an extra server in the memory one, and whisk
(--interface asgi) and the ASGI servers for asgi-hello and ws-echo -- it
starts the server (2 processes x 8 threads; ASGI: 2 processes, 127.0.0.1,
fresh port), waits until it answers, checks the response (body, keep-alive;
the WebSocket echo), runs wrk (ws-echo: bench/wsload, built into the temp
dir) once for warm-up (discarded) and then --runs times, stops the server
(whole process group + every descendant) and checks that nothing is left.
slow-clients holds 500 idle connections open from a helper thread during
its wrk runs, each after a plain hello run on the same server; memory adds
RSS/PSS of the whole process tree (/proc/PID/smaps_rollup), idle and under
load. While wrk runs it samples:
  * the listen (accept) queue of the port: a server that keeps connections
    alive but leaves some of wrk's connections waiting in the accept queue
    for the whole run is "starving" them -- wrk does not report that (it only
    counts completed requests), so we do;
  * TCP ActiveOpens from /proc/net/snmp: connections opened during the run
    (about C when keep-alive works, about the request count when it does not);
  * for whisk only: VmRSS of the whisk front process (the pid we started).

Results go to stdout as Markdown, to bench/results/ as JSON (the newest
result per (scenario, server) is kept in bench/results/latest.json), and
docs/benchmarks.md is regenerated from latest.json unless --no-docs.
"""

import argparse
import datetime
import json
import errno
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".venv")
VENV_SYS = os.path.join(BENCH, ".venv-system")
WHISK_BIN = os.path.join(BENCH, ".bin", "whisk")
RESULTS_DIR = os.path.join(BENCH, "results")
LATEST = os.path.join(RESULTS_DIR, "latest.json")
DOCS = os.path.join(REPO, "docs", "benchmarks.md")
MOD_WSGI_SO = "/usr/lib/apache2/modules/mod_wsgi.so"
APACHE_MODULES = "/usr/lib/apache2/modules"
NGINX_BIN = "/usr/sbin/nginx"

PROCESSES = 2
THREADS = 8
MIB = 1024 * 1024

# ----------------------------------------------------------------- apps/scenarios
# An "app" is what a server loads: directory, module:callable, and the file
# Apache's WSGIScriptAlias points at (callable must be named `application`).
APPS = {
    "hello": dict(dir=os.path.join(BENCH, "apps"), module="hello:application",
                  script=os.path.join(BENCH, "apps", "hello.py")),
    "big": dict(dir=os.path.join(BENCH, "apps"), module="big:application",
                script=os.path.join(BENCH, "apps", "big.py")),
    "sleep": dict(dir=os.path.join(BENCH, "apps"), module="sleep:application",
                  script=os.path.join(BENCH, "apps", "sleep.py")),
    "django": dict(dir=os.path.join(BENCH, "djangoapp"), module="benchsite.wsgi:application",
                   script=os.path.join(BENCH, "djangoapp", "benchsite", "wsgi.py")),
    # ASGI scenarios: HTTP hello + WebSocket echo, one plain ASGI 3 app.
    "asgi": dict(dir=os.path.join(BENCH, "apps"), module="asgi_hello:application",
                 script=os.path.join(BENCH, "apps", "asgi_hello.py"), interface="asgi"),
}

# Static scenarios: a file of `static_size` bytes (or exactly `static_body`),
# generated once per run into the run's temp dir (the same file for every
# server), served under /static/; `servers` restricts a scenario to the
# servers that can serve it, `peers` names whom whisk is compared with.
STATIC_SERVERS = ["whisk", "nginx"]
# ASGI scenarios: whisk (--interface asgi) against the ASGI servers, which
# take part in nothing else.
ASGI_PEERS = ["uvicorn", "granian-asgi", "daphne", "hypercorn"]
ASGI_SERVERS = ["whisk"] + ASGI_PEERS
WS_MESSAGE = "Hello, World!"  # ws-echo: the text message each round trip sends
SLEEP = 0.05  # bench/apps/sleep.py's delay
IDLE_CLIENTS = 500  # slow-clients: idle connections held while wrk runs

SCENARIOS = {
    "hello": dict(app="hello", path="/", conns=64, lua=None, rss=True,
                  title="Hello world (13 bytes), keep-alive, c=64"),
    "ceiling": dict(app="hello", path="/static/hello.txt", static_body=b"Hello, World!",
                    conns=64, lua=None, rss=True, servers=["whisk"], peers=["none"],
                    title="Ceiling: the same 13 bytes served by whisk's Go front alone "
                          "(a static file), keep-alive, c=64"),
    "hello-close": dict(app="hello", path="/", conns=64, lua=None, rss=True,
                        headers=["Connection: close"],
                        title="Hello world, `Connection: close` (a new TCP connection per request), c=64"),
    "sleep50": dict(app="sleep", path="/", conns=100, lua=None, rss=False,
                    title="50 ms sleep per request (thread concurrency), c=100"),
    "json": dict(app="django", path="/json/", conns=64, lua=None, rss=True,
                 title="Django JsonResponse (default middleware), c=64"),
    "template": dict(app="django", path="/page/", conns=64, lua=None, rss=True,
                     title="Django template page (about 20 KB, a loop over 90 rows), c=64"),
    "big-get": dict(app="big", path="/", conns=16, lua=None, rss=False,
                    title="1 MiB response body, c=16"),
    "big-post": dict(app="big", path="/", conns=16, lua=os.path.join(BENCH, "post.lua"), rss=False,
                     title="1 MiB POST body (read fully, length returned), c=16"),
    "slow-clients": dict(app="hello", path="/", conns=64, lua=None, rss=True, idle=IDLE_CLIENTS,
                         title="Hello world, keep-alive, c=64, while %d idle slow clients hold "
                               "connections (vs the same server's plain hello)" % IDLE_CLIENTS),
    "memory": dict(app="django", path="/json/", conns=64, lua=None, rss=False, memory=True,
                   title="Memory hosting Django (RSS and PSS of the whole process tree), "
                         "idle and under load (JSON view, c=64)"),
    "static-100k": dict(app="hello", path="/static/100k.bin", static_size=100 * 1024,
                        conns=64, lua=None, rss=True, servers=STATIC_SERVERS, peers=["nginx"],
                        title="Static file, 100 KiB, keep-alive, c=64 (whisk vs nginx)"),
    "static-1m": dict(app="hello", path="/static/1m.bin", static_size=MIB,
                      conns=64, lua=None, rss=True, servers=STATIC_SERVERS, peers=["nginx"],
                      title="Static file, 1 MiB, keep-alive, c=64 (whisk vs nginx)"),
    "asgi-hello": dict(app="asgi", path="/", conns=64, lua=None, rss=True,
                       servers=ASGI_SERVERS, peers=ASGI_PEERS,
                       title="ASGI hello world (13 bytes), keep-alive, c=64"),
    # ws: driven by bench/wsload (built by main()) instead of wrk; path is
    # the WebSocket's, the app answers the hello on it over plain HTTP.
    "ws-echo": dict(app="asgi", path="/ws", conns=64, lua=None, rss=True, ws=True,
                    servers=ASGI_SERVERS, peers=ASGI_PEERS, unit="round trips/s",
                    title="WebSocket echo: 64 connections, each sending a 13-byte text message "
                          "and waiting for its echo, over and over"),
}
SCENARIO_ORDER = ["hello", "ceiling", "hello-close", "sleep50", "json", "template", "big-get",
                  "big-post", "slow-clients", "memory", "static-100k", "static-1m",
                  "asgi-hello", "ws-echo"]
ASGI_SCENARIOS = ["asgi-hello", "ws-echo"]
# Files served by a static front: whisk vs nginx, and the ceiling (whisk alone).
FILE_SCENARIOS = [s for s in SCENARIO_ORDER
                  if "static_size" in SCENARIOS[s] or "static_body" in SCENARIOS[s]]
STATIC_SCENARIOS = [s for s in SCENARIO_ORDER if "static_size" in SCENARIOS[s]]
APP_SCENARIOS = [s for s in SCENARIO_ORDER if s not in FILE_SCENARIOS + ASGI_SCENARIOS]
# App scenarios judged by "no scenario below 1.0x the best peer": the sleep
# one is bound by the thread count (judged against capacity instead) and the
# memory one measures memory, not speed.
RATIO_SCENARIOS = [s for s in APP_SCENARIOS if s not in ("sleep50", "memory")]


def static_content(sc):
    """The bytes of a static scenario's file: its static_body, else
    deterministic, incompressible-looking bytes of static_size."""
    if "static_body" in sc:
        return sc["static_body"]
    import random
    return random.Random(sc["static_size"]).randbytes(sc["static_size"])


def write_static_files(directory):
    """Write every static scenario's file into directory (world-readable, for
    nginx's workers)."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    for name in FILE_SCENARIOS:
        sc = SCENARIOS[name]
        fn = os.path.join(directory, os.path.basename(sc["path"]))
        with open(fn, "wb") as f:
            f.write(static_content(sc))
        os.chmod(fn, 0o644)


def check_response(scenario, status, headers, body):
    """Return None if the response is what the app should send, else a reason."""
    if status != 200:
        return "status %d" % status
    if scenario in ("hello", "hello-close", "slow-clients", "ceiling", "asgi-hello", "ws-echo"):
        if body != b"Hello, World!":
            return "body %r" % body[:40]
        if not (headers.get("content-type") or "").startswith("text/plain"):
            return "content-type %r" % headers.get("content-type")
    elif scenario == "sleep50":
        if body != b"slept 50 ms":
            return "body %r" % body[:40]
    elif scenario in ("json", "memory"):
        try:
            doc = json.loads(body)
        except ValueError:
            return "not JSON: %r" % body[:40]
        if doc.get("message") != "Hello, World!":
            return "unexpected JSON %r" % doc
    elif scenario == "template":
        if not (headers.get("content-type") or "").startswith("text/html"):
            return "content-type %r" % headers.get("content-type")
        rows = body.count(b'<tr class="item')
        if rows != 90 or not 18000 <= len(body) <= 22000 or not body.rstrip().endswith(b"</html>"):
            return "page of %d bytes with %d rows (want ~20 KB, 90 rows)" % (len(body), rows)
    elif scenario == "big-get":
        if len(body) != MIB:
            return "body length %d" % len(body)
    elif scenario == "big-post":
        if body.strip() != str(MIB).encode():
            return "POST answered %r" % body[:40]
    elif scenario in STATIC_SCENARIOS:
        want = static_content(SCENARIOS[scenario])
        if body != want:
            return "body of %d bytes differs from the %d-byte file" % (len(body), len(want))
    return None


# ----------------------------------------------------------------- servers
# Each builder returns the argv for an app on a port; `tmp` is a private
# temp dir for sockets/config/logs. The argv is also what docs show. For the
# static scenarios app["static_dir"] is the directory to serve under /static/.
def whisk_cmd(app, port, tmp):
    # The peers run as whoever runs the bench (root here); whisk refuses
    # root workers unless told, so say so for parity.
    root = ["--allow-root"] if os.geteuid() == 0 else []
    # Static scenarios: the Go front serves /static/ itself; the app (hello)
    # is started as usual but never hit. No access log (whisk's default).
    static = ["--static", "/static/=%s" % app["static_dir"]] if app.get("static_dir") else []
    if app.get("interface") == "asgi":
        # One event loop per process (uvloop's: bench/.venv has it); threads
        # only size its executor for sync code, unused here, so left default.
        conc = ["--interface", "asgi"]
    else:
        conc = ["--threads", str(THREADS)]
    return [WHISK_BIN, "serve", "--bind", "127.0.0.1:%d" % port,
            "--processes", str(PROCESSES)] + conc + [
            "--chdir", app["dir"], "--python", VENV] + root + static + [app["module"]]


def whisk_preload_cmd(app, port, tmp):
    # Memory scenario only: the app imported once in a parent, the workers
    # forked from it (copy-on-write), like gunicorn --preload.
    argv = whisk_cmd(app, port, tmp)
    return argv[:-1] + ["--preload", argv[-1]]


def gunicorn_sync_cmd(app, port, tmp):
    # The sync worker is one request at a time per process, no threads, and
    # it always closes the connection (Connection: close): --keep-alive is
    # ignored by it; kept so both gunicorn lines differ only in the worker.
    return [os.path.join(VENV, "bin", "gunicorn"), "-w", str(PROCESSES), "-k", "sync",
            "--keep-alive", "5", "-b", "127.0.0.1:%d" % port,
            "--chdir", app["dir"], app["module"]]


def gunicorn_gthread_cmd(app, port, tmp):
    return [os.path.join(VENV, "bin", "gunicorn"), "-w", str(PROCESSES), "-k", "gthread",
            "--threads", str(THREADS), "--keep-alive", "5", "-b", "127.0.0.1:%d" % port,
            "--chdir", app["dir"], app["module"]]


def waitress_cmd(app, port, tmp):
    # waitress has no worker processes: one process, 8 threads, serving
    # connections from an asyncore loop (connection_limit 100, its default).
    # waitress-serve imports from the working directory (the app dir).
    return [os.path.join(VENV, "bin", "waitress-serve"), "--listen=127.0.0.1:%d" % port,
            "--threads=%d" % THREADS, app["module"]]


UWSGI_COMMON = ["--master", "--processes", str(PROCESSES), "--threads", str(THREADS),
                "--enable-threads", "--disable-logging", "--die-on-term", "--need-app"]


def uwsgi_cmd(app, port, tmp):
    # uWSGI's HTTP router (--http) in front of the workers, with keep-alive
    # towards the client, talking uwsgi protocol over a unix socket to the 2x8
    # workers. This is the uWSGI configuration that really keeps wrk's
    # connections alive without starving any (see docs/benchmarks.md).
    sock = os.path.join(tmp, "uwsgi.sock")
    return [os.path.join(VENV, "bin", "uwsgi"), "--http", "127.0.0.1:%d" % port,
            "--http-keepalive", "--http-to", sock, "--socket", sock] + UWSGI_COMMON + [
            "--chdir", app["dir"], "--module", app["module"]]


def uwsgi_http_socket_cmd(app, port, tmp):
    # The issue's "uWSGI with --http-socket". Workers parse HTTP themselves;
    # uWSGI 2.0 answers HTTP/1.1 and closes the connection after every
    # response without "Connection: close" (even when the client sent it), so
    # wrk counts every request as a read error. --http-keepalive (a router
    # option) and --add-header "Connection: Keep-Alive" do not change that,
    # so neither is passed.
    return [os.path.join(VENV, "bin", "uwsgi"), "--http-socket", "127.0.0.1:%d" % port
            ] + UWSGI_COMMON + ["--chdir", app["dir"], "--module", app["module"]]


def uwsgi_http11_cmd(app, port, tmp):
    # Not in the default set. Keep-alive works, but each worker thread stays
    # pinned to its connection: with c > processes*threads the remaining
    # connections wait in the accept queue for the whole run (starved).
    return [os.path.join(VENV, "bin", "uwsgi"), "--http11-socket", "127.0.0.1:%d" % port
            ] + UWSGI_COMMON + ["--chdir", app["dir"], "--module", app["module"]]


def granian_cmd(app, port, tmp):
    # --runtime-threads left at its default (1); access log is off by default.
    return [os.path.join(VENV, "bin", "granian"), "--interface", "wsgi",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(PROCESSES), "--blocking-threads", str(THREADS),
            "--no-access-log", "--working-dir", app["dir"], app["module"]]


# ASGI servers: 2 worker processes each (daphne: 1, it has none), uvloop
# where the server can use it, no access log.
def uvicorn_cmd(app, port, tmp):
    # What uvicorn[standard] runs: uvloop, httptools, and for WebSockets the
    # websockets package's sans-I/O protocol (named explicitly; "auto" picks
    # the same ones; the legacy "--ws websockets" echoed ~45% fewer round
    # trips in a quick check). Its parent binds the socket, the 2 workers
    # accept from it.
    return [os.path.join(VENV, "bin", "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(PROCESSES), "--loop", "uvloop", "--http", "httptools",
            "--ws", "websockets-sansio", "--no-access-log", "--app-dir", app["dir"], app["module"]]


def granian_asgi_cmd(app, port, tmp):
    # --blocking-threads: ASGI allows only 1 (the default); --runtime-threads 1 (default).
    return [os.path.join(VENV, "bin", "granian"), "--interface", "asgi",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(PROCESSES),
            "--loop", "uvloop", "--no-access-log", "--working-dir", app["dir"], app["module"]]


def daphne_cmd(app, port, tmp):
    # daphne has no worker processes (one Twisted reactor; scale-out is
    # several daphnes under a process manager or a balancer): one process.
    # -v 0: no access log (verbosity 1, the default, logs to stdout).
    # It imports from the working directory (the app dir).
    return [os.path.join(VENV, "bin", "daphne"), "-b", "127.0.0.1", "-p", str(port),
            "-v", "0", app["module"]]


def hypercorn_cmd(app, port, tmp):
    # -k uvloop: the uvloop worker class; no access log unless --access-logfile.
    return [os.path.join(VENV, "bin", "hypercorn"), "-b", "127.0.0.1:%d" % port,
            "-w", str(PROCESSES), "-k", "uvloop", app["module"]]


APACHE_CONF = """\
# Generated by bench/run.py for one benchmark run (Apache 2.4 + mod_wsgi daemon mode).
ServerRoot "{tmp}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{tmp}/httpd.pid"
DefaultRuntimeDir "{tmp}"
ErrorLog "{tmp}/error.log"
LogLevel warn
# no CustomLog: access logging off, like the other servers
User www-data
Group www-data

LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule wsgi_module {mod_wsgi}

# Enough front threads for c=64 (the Python work happens in the daemons).
StartServers 2
ServerLimit 4
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 64
MaxSpareThreads 256
MaxRequestWorkers 256
MaxConnectionsPerChild 0

KeepAlive On
KeepAliveTimeout 5
# unlimited requests per connection, like the other servers (Apache default: 100)
MaxKeepAliveRequests 0
Timeout 60

WSGISocketPrefix "{tmp}/wsgi"
WSGIDaemonProcess bench processes={procs} threads={threads} python-home={venv} python-path={appdir} display-name=%{{GROUP}}
WSGIProcessGroup bench
WSGIApplicationGroup %{{GLOBAL}}
WSGIScriptAlias / {script}

<Directory "{appdir}">
    Require all granted
</Directory>
"""


def apache_cmd(app, port, tmp):
    conf = os.path.join(tmp, "httpd.conf")
    with open(conf, "w") as f:
        f.write(APACHE_CONF.format(tmp=tmp, port=port, mods=APACHE_MODULES, mod_wsgi=MOD_WSGI_SO,
                                   procs=PROCESSES, threads=THREADS, venv=VENV_SYS,
                                   appdir=app["dir"], script=app["script"]))
    os.chmod(tmp, 0o755)  # mod_wsgi daemons (www-data) need the socket dir
    return ["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"]


NGINX_CONF = """\
# Generated by bench/run.py for one benchmark run (Debian's nginx).
{user}worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    # default 512; the slow-clients scenario holds 500 idle connections
    worker_connections 4096;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    # unlimited for practical purposes (default 1000), like the other servers
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""

# Static scenarios: nginx serves the files itself.
NGINX_STATIC = """\
        # what nginx users tune for static files: cached open fds and stat()s
        open_file_cache max=1000 inactive=60s;
        location /static/ {{
            alias {static}/;
        }}"""

# nginx-gunicorn: the production stack of the seed documents (nginx
# proxying to gunicorn over a unix socket), with their proxy settings; one
# upstream connection per request, as there (no upstream keepalive).
NGINX_PROXY = """\
        # the default (1m) is exactly the big-post body; production sites raise it
        client_max_body_size 16m;
        location / {{
            proxy_pass http://unix:{sock};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
        }}"""


def nginx_conf(tmp, port, locations):
    """Write tmp/nginx.conf around the given server locations; returns nginx's argv."""
    conf = os.path.join(tmp, "nginx.conf")
    # As root the master needs a user for its workers (the files are world-readable).
    user = "user www-data;\n" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(user=user, workers=os.cpu_count() or 1, tmp=tmp, port=port,
                                  locations=locations))
    os.chmod(tmp, 0o755)
    # -e: the error log before the config is read (else /var/log/nginx/error.log).
    return [NGINX_BIN, "-e", os.path.join(tmp, "error.log"), "-p", tmp, "-c", conf]


def nginx_cmd(app, port, tmp):
    if not app.get("static_dir"):
        raise RuntimeError("nginx serves only the static scenarios")
    return nginx_conf(tmp, port, NGINX_STATIC.format(static=app["static_dir"]))


def nginx_gunicorn_cmd(app, port, tmp):
    # One process group under a shell: gunicorn (gthread 2 x 8) in the
    # background on a unix socket (its default umask 0 lets nginx's www-data
    # workers connect), then the shell becomes nginx, so nginx is the leader
    # and gunicorn its child; the harness's group kill stops both.
    sock = os.path.join(tmp, "gunicorn.sock")
    gunicorn = [os.path.join(VENV, "bin", "gunicorn"), "-w", str(PROCESSES), "-k", "gthread",
                "--threads", str(THREADS), "--keep-alive", "5", "-b", "unix:%s" % sock,
                "--chdir", app["dir"], app["module"]]
    nginx = nginx_conf(tmp, port, NGINX_PROXY.format(sock=sock))
    script = "%s & exec %s" % (" ".join(shlex.quote(a) for a in gunicorn),
                               " ".join(shlex.quote(a) for a in nginx))
    return ["/bin/sh", "-c", script]


SERVERS = {
    "whisk": whisk_cmd,
    "whisk-preload": whisk_preload_cmd,  # memory scenario only
    "gunicorn-sync": gunicorn_sync_cmd,
    "gunicorn-gthread": gunicorn_gthread_cmd,
    "nginx-gunicorn": nginx_gunicorn_cmd,
    "uwsgi": uwsgi_cmd,
    "uwsgi-http-socket": uwsgi_http_socket_cmd,
    "granian": granian_cmd,
    "apache": apache_cmd,
    "waitress": waitress_cmd,
    "nginx": nginx_cmd,  # static scenarios only
    # diagnostic variant, not in the default set
    "uwsgi-http11": uwsgi_http11_cmd,
    # ASGI scenarios only
    "uvicorn": uvicorn_cmd,
    "granian-asgi": granian_asgi_cmd,
    "daphne": daphne_cmd,
    "hypercorn": hypercorn_cmd,
}
# The WSGI servers run by default; "best peer" of the app scenarios is one of them.
DEFAULT_SERVERS = ["whisk", "whisk-preload", "gunicorn-sync", "gunicorn-gthread", "nginx-gunicorn",
                   "uwsgi", "uwsgi-http-socket", "granian", "apache", "waitress"]
DIAGNOSTIC_SERVERS = ["uwsgi-http11"]
# whisk itself in another configuration: never a peer.
WHISK_SERVERS = ["whisk", "whisk-preload"]
# The issue's hello target: "the best of gunicorn, uWSGI and mod_wsgi".
PEERS_FOR_HELLO_TARGET = ["gunicorn-sync", "gunicorn-gthread", "nginx-gunicorn", "uwsgi",
                          "uwsgi-http-socket", "apache"]
# Requests that can run at once (the sleep50 capacity): processes x threads,
# except for the servers without threads or without processes.
CONCURRENCY = {"gunicorn-sync": PROCESSES, "waitress": THREADS}
# Worker processes of the ASGI servers (daphne has no multi-process mode).
ASGI_PROCESSES = {"daphne": 1}

SERVER_NOTES = {
    "whisk": "Go front + 2 Python worker processes x 8 threads.",
    "whisk-preload": "whisk with --preload (app imported once, workers forked from it); "
                     "memory scenario only.",
    "gunicorn-sync": "sync worker: 1 request at a time per process (no threads), "
                     "closes the connection after every response (no keep-alive).",
    "gunicorn-gthread": "gthread worker, keep-alive 5 s.",
    "nginx-gunicorn": "Debian's nginx (one worker per CPU, keep-alive to the clients) proxying over "
                      "a unix socket to gunicorn gthread 2 x 8: the seed documents' production "
                      "stack, one upstream connection per request (configuration below).",
    "uwsgi": "HTTP router process (keep-alive) -> unix socket -> 2 workers x 8 threads.",
    "uwsgi-http-socket": "--http-socket: the workers (2 x 8) parse HTTP themselves; uWSGI 2.0 "
                         "closes the connection after every response without saying so.",
    "granian": "Rust HTTP front per worker, 8 blocking threads, 1 runtime thread (default).",
    "apache": "mpm_event front, mod_wsgi daemon mode (2 x 8), Debian's mod_wsgi + /usr/bin/python3.",
    "waitress": "one process (waitress has no worker processes) x 8 threads, asyncore front, "
                "its default connection_limit 100.",
    "nginx": "Debian's nginx, static scenarios only: one worker per CPU, sendfile, tcp_nopush, "
             "open_file_cache (configuration below).",
    "uwsgi-http11": "diagnostic: --http11-socket, thread pinned per connection.",
    "uvicorn": "2 worker processes (uvicorn's supervisor binds the socket, the workers accept), "
               "uvloop + httptools + websockets (sans-I/O): what `uvicorn[standard]` runs.",
    "granian-asgi": "Granian's ASGI interface: Rust HTTP/WebSocket front per worker, 2 workers, "
                    "uvloop, 1 runtime thread (default).",
    "daphne": "**one process**: daphne (Twisted + autobahn for WebSockets) has no worker "
              "processes; more cores take several daphnes run by a process manager (sharing "
              "a socket with `--fd`) or behind a load balancer.",
    "hypercorn": "2 workers, uvloop worker class (`-k uvloop`), h11 + wsproto.",
}


# ----------------------------------------------------------------- process handling
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_table():
    """pid -> (ppid, pgid, sid, starttime) for every live (non-zombie) process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if rest[0] == "Z":
            continue
        table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]))
    return table


def related_pids(leader):
    """{pid: starttime} of every process in the leader's session/process group
    or descending from it. The start time identifies a process even if its
    pid is later reused by someone else's process."""
    table = _proc_table()
    pids = {p for p, (_, pgid, sid, _) in table.items() if pgid == leader or sid == leader}
    if leader in table:
        pids.add(leader)
    changed = True
    while changed:
        changed = False
        for p, (ppid, _, _, _) in table.items():
            if ppid in pids and p not in pids:
                pids.add(p)
                changed = True
    return {p: table[p][3] for p in pids}


def still_alive(known):
    """The processes of {pid: starttime} that are still running (same start time)."""
    table = _proc_table()
    return {p: st for p, st in known.items() if p in table and table[p][3] == st}


class Server:
    def __init__(self, name, app_name, tmp_root, static_dir=None):
        self.name = name
        self.app = dict(APPS[app_name])
        if static_dir:
            self.app["static_dir"] = static_dir
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="whisk-bench-%s-" % name, dir=tmp_root)
        self.argv = SERVERS[name](self.app, self.port, self.tmp)
        self.log_path = os.path.join(self.tmp, "server.log")
        self.proc = None
        self.known = {}  # pid -> starttime of every process seen in the server tree

    def start(self):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.app["dir"], env=env,
                                     start_new_session=True)

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        extra = os.path.join(self.tmp, "error.log")  # apache, nginx
        if os.path.exists(extra):
            with open(extra, "rb") as f:
                lines += ["[%s error.log] %s" % (self.name, l) for l in f.read().decode(errors="replace").splitlines()]
        return "\n".join(lines[-n:])

    def wait_ready(self, path, timeout=60.0):
        deadline = time.time() + timeout
        last = "no answer"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during start-up:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            self.known.update(related_pids(self.proc.pid))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    self.known.update(related_pids(self.proc.pid))
                    return
                last = "HTTP %d" % r.status
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError("%s not ready after %ds (%s):\n%s" % (self.name, timeout, last, self.log_tail()))

    def stop(self):
        if self.proc is None:
            return
        leader = self.proc.pid
        self.known.update(related_pids(leader))
        try:
            os.killpg(leader, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # give children (Apache/mod_wsgi daemons, uWSGI workers) a moment
        deadline = time.time() + 5
        while time.time() < deadline and self._left(leader):
            time.sleep(0.1)
        for pid in self._left(leader):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(leader, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)
        left = self._left(leader)
        self.log.close()
        self.proc = None
        if left:
            raise RuntimeError("%s: processes still alive after SIGKILL: %s" % (self.name, sorted(left)))
        if listen_queue(self.port) is not None:
            raise RuntimeError("%s: port %d still listening after stop" % (self.name, self.port))
        return sorted(self.known)

    def _left(self, leader):
        """pids of the server's processes still running."""
        left = related_pids(leader)
        self.known.update(left)
        return set(still_alive(self.known))


# ----------------------------------------------------------------- probes
def listen_queue(port):
    """Current accept-queue length of the 127.0.0.1:port listener (None if none)."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[3].endswith(":%d" % port):
            return int(f[1])
    return None


def tcp_active_opens():
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])


def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def port_sockets(port):
    """(accept-queue length or None, set of client addresses connected) for the
    127.0.0.1:port listener, from one `ss` call (kernel-side filtered)."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "state", "listening",
                          "( sport = :%d )" % port], capture_output=True, text=True).stdout
    queue, peers = None, set()
    for line in out.splitlines():
        f = line.split()
        # State Recv-Q Send-Q Local:Port Peer:Port
        if len(f) < 5 or not f[3].endswith(":%d" % port):
            continue
        if f[0] == "LISTEN":
            queue = int(f[1])
        else:
            peers.add(f[4])
    return queue, peers


def tree_memory_kb(pids):
    """(RSS, PSS) in KiB summed over the given processes, from
    /proc/PID/smaps_rollup. RSS counts a page shared by n processes n times
    (copy-on-write after a fork, shared libraries); PSS charges each process
    1/n of it, so the PSS sum is the memory the whole tree really uses."""
    rss = pss = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (OSError, ValueError):
            pass  # exited meanwhile (or a kernel thread)
    return rss, pss


class Sampler(threading.Thread):
    """Every `interval` s: accept queue + client connections of the port,
    VmRSS of rss_pid (whisk's front) if given, and RSS/PSS of the whole process
    tree of tree_leader if given."""
    def __init__(self, port, rss_pid=None, interval=0.5, tree_leader=None):
        super().__init__(daemon=True)
        self.port, self.rss_pid, self.interval = port, rss_pid, interval
        self.tree_leader = tree_leader
        self.queue, self.rss, self.peers, self.tree = [], [], set(), []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(self.interval):
            q, peers = port_sockets(self.port)
            if q is not None:
                self.queue.append(q)
            self.peers |= peers
            if self.rss_pid:
                r = vm_rss_kb(self.rss_pid)
                if r:
                    self.rss.append(r)
            if self.tree_leader:
                self.tree.append(tree_memory_kb(related_pids(self.tree_leader)))

    def stop(self):
        self._halt.set()
        self.join()


class SlowClients(threading.Thread):
    """`count` idle client connections to 127.0.0.1:port, opened by
    open_all() before the load starts and held until stop(): even ones send
    nothing, odd ones a partial request head and then one more header line per
    tick (a slowloris). A connection the server closes (or answers, e.g. 408)
    is counted and reopened at the next tick, as an attacker would, so up to
    `count` stay open; never more than `count` sockets exist at once."""
    HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"

    def __init__(self, port, count, tick=1.0):
        super().__init__(daemon=True)
        self.addr, self.count, self.tick = ("127.0.0.1", port), count, tick
        self.conns = {}  # socket -> dict(i, state "connecting"/"open", lines sent)
        self.addrs = set()  # "127.0.0.1:PORT" of every connection made (ss peer format)
        self.established_at_start = 0
        self.closed_by_server = self.connect_failed = 0
        self.open_samples = []
        self._halt = threading.Event()

    def _open(self, i):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.connect_failed += 1
            return
        self.conns[s] = dict(i=i, state="connecting", lines=0)

    def _replace(self, s, closed_by_server):
        i = self.conns.pop(s)["i"]
        s.close()
        if closed_by_server:
            self.closed_by_server += 1
        else:
            self.connect_failed += 1
        if not self._halt.is_set():
            self._open(i)

    def _step(self, trickle):
        """One pass: finish connects (the odd ones then send the partial
        head), detect closes, and if `trickle` send each odd one a header line."""
        poller = select.poll()
        for s in self.conns:
            poller.register(s, select.POLLIN | select.POLLOUT)
        events = dict(poller.poll(0))
        for s, st in list(self.conns.items()):
            ev = events.get(s.fileno(), 0)
            if st["state"] == "connecting":
                if not ev & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                    continue  # still in the server's SYN/accept backlog
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._replace(s, False)
                    continue
                st["state"] = "open"
                self.addrs.add("%s:%d" % s.getsockname())
                try:
                    if st["i"] % 2:
                        s.send(self.HEAD)
                except OSError:
                    self._replace(s, True)
                continue
            try:
                if ev & (select.POLLIN | select.POLLERR | select.POLLHUP):
                    s.recv(65536)  # EOF or an error response: the server gave up on us
                    self._replace(s, True)
                elif trickle and st["i"] % 2:
                    st["lines"] += 1
                    s.send(b"X-Idle-%d: %d\r\n" % (st["i"], st["lines"]))
            except OSError:
                self._replace(s, True)

    def open_all(self, wait=3.0):
        """Open the connections; wait up to `wait` s for them to be established."""
        for i in range(self.count):
            self._open(i)
        deadline = time.time() + wait
        while time.time() < deadline:
            self._step(False)
            if all(st["state"] == "open" for st in self.conns.values()):
                break
            time.sleep(0.05)
        self.established_at_start = sum(st["state"] == "open" for st in self.conns.values())

    def run(self):
        while not self._halt.wait(self.tick):
            self._step(True)
            self.open_samples.append(sum(st["state"] == "open" for st in self.conns.values()))

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join()
        for s in list(self.conns):
            s.close()
        self.conns.clear()

    def summary(self):
        return dict(target=self.count, established_at_start=self.established_at_start,
                    open_min=min(self.open_samples) if self.open_samples else self.established_at_start,
                    closed_by_server=self.closed_by_server, connect_failed=self.connect_failed)


def raise_fd_limit(need):
    """The slow-clients scenario holds hundreds of sockets: lift the soft
    RLIMIT_NOFILE towards the hard one if it is below `need`."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def scenario_headers(scenario):
    """The scenario's extra request headers as a dict (e.g. Connection: close)."""
    return dict(h.split(": ", 1) for h in SCENARIOS[scenario].get("headers", []))


def smoke_test(scenario, port, path):
    """One real request (checked) and a keep-alive probe: three requests on one
    connection; returns (error or None, keepalive bool). A scenario that sends
    `Connection: close` requires the server to close instead."""
    body = b"x" * MIB if scenario == "big-post" else None
    method = "POST" if body else "GET"
    hdrs = {"Content-Type": "application/octet-stream"} if body else {}
    hdrs.update(scenario_headers(scenario))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ports = []
    err = None
    try:
        for i in range(3):
            try:
                c.request(method, path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                if i == 0:
                    err = "request failed: %s" % e
                # later requests: the server closed the connection without
                # saying so (no keep-alive); not a correctness problem here
                ports.append(None)
                break
            err = err or check_response(scenario, r.status, {k.lower(): v for k, v in r.getheaders()}, data)
            ports.append(c.sock.getsockname()[1] if c.sock else None)
            if c.sock is None:  # server said Connection: close
                break
    finally:
        c.close()
    keepalive = len(ports) == 3 and None not in ports and len(set(ports)) == 1
    if not err and keepalive and scenario_headers(scenario).get("Connection") == "close":
        err = "kept the connection open after a request with Connection: close"
    return err, keepalive


def ws_smoke_test(port, path):
    """The WebSocket echo on one connection (text, binary, text), checked by
    bench/wsload -check; returns None or the reason."""
    p = subprocess.run([WSLOAD, "-check", "-url", "ws://127.0.0.1:%d%s" % (port, path),
                        "-msg", WS_MESSAGE], capture_output=True, text=True, timeout=60)
    return None if p.returncode == 0 else "WebSocket echo: %s" % (p.stderr or p.stdout).strip()[-300:]


# ----------------------------------------------------------------- wrk
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
# wrk's error kinds, and the load generators' wrong answers (ws-echo)
ERROR_KINDS = ("non2xx", "connect", "read", "write", "timeout", "mismatch")


def parse_wrk(out):
    def num(pattern, cast=float, default=0):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default
    res = dict(rps=num(r"Requests/sec:\s+([\d.]+)"),
               requests=num(r"(\d+) requests in", int),
               non2xx=num(r"Non-2xx or 3xx responses:\s+(\d+)", int),
               connect=0, read=0, write=0, timeout=0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res.update(connect=int(m.group(1)), read=int(m.group(2)),
                   write=int(m.group(3)), timeout=int(m.group(4)))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    res["p99_ms"] = float(m.group(1)) * _UNITS[m.group(2)] if m else None
    res["mismatch"] = 0
    res["errors"] = sum(res[k] for k in ERROR_KINDS)
    return res


WSLOAD = None  # bench/wsload built into the run's temp dir by main() (ws scenarios)


def wsload_argv(sc, port, duration):
    return [WSLOAD, "-url", "ws://127.0.0.1:%d%s" % (port, sc["path"]), "-c", str(sc["conns"]),
            "-d", "%ds" % duration, "-msg", WS_MESSAGE]


def parse_wsload(out):
    """bench/wsload's JSON line, in parse_wrk's terms: a round trip is a
    request, an echo that differs from the message sent is a "mismatch"."""
    d = json.loads(out.strip().splitlines()[-1])
    res = dict(rps=d["rps"], requests=d["round_trips"], p99_ms=d["p99_ms"] if d["round_trips"] else None,
               non2xx=0, connect=d["connect"], read=d["read"], write=d["write"],
               timeout=d["timeout"], mismatch=d["mismatch"])
    res["errors"] = sum(res[k] for k in ERROR_KINDS)
    return res


def build_wsload(directory):
    """go build bench/wsload into directory; returns its path, or None (logged)."""
    out = os.path.join(directory, "wsload")
    p = subprocess.run(["go", "build", "-o", out, "./bench/wsload"], cwd=REPO,
                       capture_output=True, text=True)
    if p.returncode != 0:
        log("bench/wsload does not build: %s" % (p.stderr or p.stdout)[-800:])
        return None
    return out


def wrk_argv(sc, port, duration):
    argv = ["wrk", "-t2", "-c%d" % sc["conns"], "-d%ds" % duration, "--latency"]
    if sc["lua"]:
        argv += ["-s", sc["lua"]]
    for h in sc.get("headers", []):
        argv += ["-H", h]
    return argv + ["http://127.0.0.1:%d%s" % (port, sc["path"])]


HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def machine_busy_ticks():
    """CPU ticks of the whole machine (/proc/stat, all CPUs) spent in processes
    (user, nice, system) or stolen by the hypervisor. irq/softirq time is left
    out: it is not charged to any process, and during a run it is mostly the
    loopback traffic between wrk and the server, i.e. the benchmark itself."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return user + nice + system + steal


def tree_ticks(pids):
    """utime+stime ticks of the given processes (all their threads)."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def own_seconds():
    t = os.times()  # this harness + its waited children (wrk, ss)
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(max_wait, threshold):
    """Wait (up to max_wait s) until the machine's CPU use over 1 s is below
    threshold % (the server under test is idle here). Returns the last %."""
    deadline = time.time() + max_wait
    while True:
        b0, h0 = machine_busy_ticks(), own_seconds()
        time.sleep(1.0)
        pct = 100.0 * ((machine_busy_ticks() - b0) - (own_seconds() - h0) * HZ) / (HZ * NCPU)
        if pct < threshold or time.time() >= deadline:
            return pct


def run_wrk(sc, srv, duration, rss_pid, idle=0, tree=False):
    """One wrk run against srv; returns the parsed result plus samples and the
    share of the machine's CPU used by *other* processes (not the server's
    process tree, not wrk, not this harness) during the run. idle: hold that
    many idle slow clients (SlowClients) open during the run, opened first;
    tree: sample RSS/PSS of the server's whole process tree."""
    port = srv.port
    sampler = Sampler(port, rss_pid, tree_leader=srv.proc.pid if tree else None)
    slow = SlowClients(port, idle) if idle else None
    try:
        if slow:
            slow.open_all()
            slow.start()
        pids = related_pids(srv.proc.pid)
        opens0 = tcp_active_opens()
        b0, s0, h0, t0 = machine_busy_ticks(), tree_ticks(pids), own_seconds(), time.time()
        sampler.start()
        argv = wsload_argv(sc, port, duration) if sc.get("ws") else wrk_argv(sc, port, duration)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            if not slow:
                raise
            # Behind the idle clients the server never answered wrk's
            # connections, and wrk hung in them: that is the stall this
            # scenario looks for, a result of 0 requests, not a failure.
            p = subprocess.CompletedProcess([], 0, "Requests/sec: 0\n0 requests in %ds\n" % duration, "")
        sampler.stop()
        pids1 = related_pids(srv.proc.pid)
        b1, h1, t1 = machine_busy_ticks(), own_seconds(), time.time()
        s1 = tree_ticks(pids | pids1)
        opens = tcp_active_opens() - opens0
    finally:
        if slow:
            slow.stop()
    if p.returncode != 0 or ("round_trips" if sc.get("ws") else "Requests/sec") not in p.stdout:
        raise RuntimeError("%s failed (%d): %s %s" % (os.path.basename(argv[0]), p.returncode,
                                                      p.stdout[-500:], p.stderr[-500:]))
    res = parse_wsload(p.stdout) if sc.get("ws") else parse_wrk(p.stdout)
    peers = sampler.peers
    if slow:
        # the idle clients are not wrk's: leave them out of the connection counts
        peers = peers - slow.addrs
        opens -= slow.closed_by_server + slow.connect_failed
        res["idle"] = slow.summary()
    res["conns_opened"] = opens  # machine-wide: includes other processes' connections
    res["conns_seen"] = len(peers)  # distinct client connections seen in the samples
    res["samples"] = len(sampler.queue)
    cap = HZ * NCPU * (t1 - t0)
    res["server_cpu_pct"] = 100.0 * (s1 - s0) / cap
    res["others_cpu_pct"] = max(0.0, 100.0 * ((b1 - b0) - (s1 - s0) - (h1 - h0) * HZ) / cap)
    q = sorted(sampler.queue)
    res["acceptq_median"] = statistics.median(q) if q else 0
    res["acceptq_max"] = max(q) if q else 0
    res["rss_max_kb"] = max(sampler.rss) if sampler.rss else None
    if sampler.tree:
        # the sample with the most PSS (RSS of that same moment)
        res["tree_load_rss_kb"], res["tree_load_pss_kb"] = max(sampler.tree, key=lambda m: m[1])
    res["raw"] = p.stdout
    return res


# ----------------------------------------------------------------- benchmark loop
CURRENT = []  # running Server objects, for cleanup on signals


def cleanup(*_):
    for s in list(CURRENT):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001
            print("cleanup: %s" % e, file=sys.stderr)
    CURRENT.clear()


def applies(server_name, scenario):
    """Whether the server takes part in the scenario: static scenarios name
    their servers; nginx serves nothing else."""
    allowed = SCENARIOS[scenario].get("servers")
    if allowed:
        return server_name in allowed
    if server_name == "whisk-preload":  # a memory configuration
        return scenario == "memory"
    return server_name != "nginx" and server_name not in ASGI_PEERS


def bench_one(server_name, scenario, args, tmp_root):
    sc = SCENARIOS[scenario]
    static_dir = os.path.join(tmp_root, "static") if scenario in FILE_SCENARIOS else None
    srv = Server(server_name, sc["app"], tmp_root, static_dir)
    row = dict(server=server_name, scenario=scenario, conns=sc["conns"], runs=args.runs,
               duration=args.duration, warmup=args.warmup,
               argv=srv.argv, port=srv.port,
               date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    if server_name == "whisk":
        row["build"] = whisk_build_info()
    log("[%s/%s] starting: %s" % (scenario, server_name, " ".join(shlex.quote(a) for a in srv.argv)))
    CURRENT.append(srv)
    try:
        srv.start()
        srv.wait_ready(sc["path"])
        err, ka = smoke_test(scenario, srv.port, sc["path"])
        if not err and sc.get("ws"):
            err = ws_smoke_test(srv.port, sc["path"])
        row["smoke_error"], row["keepalive_probe"] = err, ka
        if err:
            raise RuntimeError("%s answered wrongly: %s" % (server_name, err))
        rss_pid = srv.proc.pid if (server_name == "whisk" and sc["rss"]) else None
        # memory: "idle" means after every worker has served requests
        # (lazily started threads, imports on first request), so always warm up.
        warmup = max(args.warmup, 2) if sc.get("memory") else args.warmup
        if warmup > 0:
            warm = run_wrk(sc, srv, warmup, rss_pid)
            row["warmup_rss_max_kb"] = warm["rss_max_kb"]
        if sc.get("memory"):
            time.sleep(1.0)  # let in-flight work finish: idle
            pids = related_pids(srv.proc.pid)
            row["processes"] = len(pids)
            row["tree_idle_rss_kb"], row["tree_idle_pss_kb"] = tree_memory_kb(pids)
        runs = []
        for i in range(args.runs):
            # Other users of the machine distort results: wait for a quiet
            # moment, and redo a run during which others used > --busy % CPU
            # (keeping the least disturbed attempt if it never gets quiet).
            attempts = []
            for attempt in range(1 + args.retries):
                wait_quiet(args.quiet_wait, args.busy)
                base = None
                if sc.get("idle"):
                    # the same server's plain hello, measured just before
                    base = run_wrk(sc, srv, args.duration, rss_pid)
                    wait_quiet(args.quiet_wait, args.busy)
                r = run_wrk(sc, srv, args.duration, rss_pid, idle=sc.get("idle", 0),
                            tree=bool(sc.get("memory")))
                if base:
                    r["baseline_rps"], r["baseline_errors"] = base["rps"], base["errors"]
                    r["others_cpu_pct"] = max(r["others_cpu_pct"], base["others_cpu_pct"])
                    log("[%s/%s]   plain hello just before: %.0f req/s, errors %d; "
                        "idle clients: %s" % (scenario, server_name, base["rps"], base["errors"],
                                              r["idle"]))
                attempts.append(r)
                log("[%s/%s] run %d/%d: %.0f req/s, p99 %s ms, errors %d, conns seen %d "
                    "(machine-wide opened %d), accept-q median %s, CPU server %.0f%% others %.0f%%"
                    % (scenario, server_name, i + 1, args.runs, r["rps"], r["p99_ms"], r["errors"],
                       r["conns_seen"], r["conns_opened"], r["acceptq_median"],
                       r["server_cpu_pct"], r["others_cpu_pct"]))
                if r["others_cpu_pct"] <= args.busy:
                    break
                log("[%s/%s]   machine busy (others %.0f%% > %g%%)%s"
                    % (scenario, server_name, r["others_cpu_pct"], args.busy,
                       ", retrying" if attempt < args.retries else ", keeping the least disturbed run"))
            r = min(attempts, key=lambda a: a["others_cpu_pct"])
            r["attempts"] = len(attempts)
            runs.append(r)
        row["runs_detail"] = [{k: v for k, v in r.items() if k != "raw"} for r in runs]
        row["last_wrk_output"] = runs[-1]["raw"]
        row["rps"] = statistics.median(r["rps"] for r in runs)
        p99s = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
        row["p99_ms"] = statistics.median(p99s) if p99s else None
        row["errors"] = sum(r["errors"] for r in runs)
        row["errors_detail"] = {k: sum(r.get(k, 0) for r in runs) for k in ERROR_KINDS}
        row["requests"] = sum(r["requests"] for r in runs)
        row["conns_opened"] = statistics.median(r["conns_opened"] for r in runs)
        row["conns_seen"] = statistics.median(r["conns_seen"] for r in runs)
        row["acceptq_median"] = statistics.median(r["acceptq_median"] for r in runs)
        row["others_cpu_pct"] = statistics.median(r["others_cpu_pct"] for r in runs)
        row["server_cpu_pct"] = statistics.median(r["server_cpu_pct"] for r in runs)
        row["busy_threshold"] = args.busy
        rss = [r["rss_max_kb"] for r in runs if r["rss_max_kb"]] + \
              ([row["warmup_rss_max_kb"]] if row.get("warmup_rss_max_kb") else [])
        row["rss_max_kb"] = max(rss) if rss else None
        if sc.get("idle"):
            row["baseline_rps"] = statistics.median(r["baseline_rps"] for r in runs)
            row["baseline_errors"] = sum(r["baseline_errors"] for r in runs)
            row["idle"] = runs[-1]["idle"]
            row["idle"]["closed_by_server"] = sum(r["idle"]["closed_by_server"] for r in runs)
            row["idle"]["open_min"] = min(r["idle"]["open_min"] for r in runs)
        if sc.get("memory"):
            worst = max(runs, key=lambda r: r.get("tree_load_pss_kb", 0))
            row["tree_load_rss_kb"] = worst.get("tree_load_rss_kb")
            row["tree_load_pss_kb"] = worst.get("tree_load_pss_kb")
    except Exception as e:  # noqa: BLE001
        row["failed"] = str(e)
        log("[%s/%s] FAILED: %s" % (scenario, server_name, e))
    finally:
        try:
            srv.stop()
        except Exception as e:  # noqa: BLE001
            row["failed"] = (row.get("failed", "") + " / stop: %s" % e).strip(" /")
            log("[%s/%s] STOP PROBLEM: %s" % (scenario, server_name, e))
        if srv in CURRENT:
            CURRENT.remove(srv)
        shutil.rmtree(srv.tmp, ignore_errors=True)
    return row


def whisk_build_info():
    """Which whisk was measured: its --version and the repo state it was built from."""
    ver = sh("%s --version 2>&1 | head -n1" % shlex.quote(WHISK_BIN)) or "?"
    rev = sh("git -C %s describe --always --dirty 2>/dev/null" % shlex.quote(REPO)) or "no commit"
    return "%s; built by bench/run.sh from the working tree at git %s" % (ver, rev)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- reporting
def flags(row):
    """Problems that make a row's number suspect (shown in the table)."""
    out = []
    if row.get("failed"):
        return ["FAILED: %s" % row["failed"].splitlines()[0][:120]]
    if not row.get("rps"):
        # wrk counts no error for requests that never got an answer
        out.append("stalled: no request completed")
    if row.get("errors"):
        d = row["errors_detail"]
        out.append("%d errors (%s)" % (row["errors"], ", ".join("%s %d" % (k, v) for k, v in d.items() if v)))
    if row.get("others_cpu_pct", 0) > row.get("busy_threshold", 10.0):
        out.append("machine busy: other processes used %.0f%% CPU" % row["others_cpu_pct"])
    if row.get("idle") and row.get("acceptq_median", 0) > 0:
        # cannot tell wrk's connections from the idle clients there
        out.append("%g connections wait in the accept queue (idle clients included)"
                   % row["acceptq_median"])
    elif keeps_alive(row) and row.get("acceptq_median", 0) > 0:
        out.append("starves %g connections (accept queue)" % row["acceptq_median"])
    return out


def keeps_alive(row):
    """wrk's C connections were reused for the whole run: few distinct client
    connections were seen by sampling AND the machine-wide TCP open counter did
    not grow like the request count (sampling alone misses connections that
    live for a single request)."""
    per_run = row["requests"] / max(1, row["runs"])
    return (row.get("conns_seen", 0) <= 2 * row["conns"]
            and row["conns_opened"] <= max(2 * row["conns"], 0.5 * per_run))


def fmt_conns(row):
    if not row.get("requests"):
        return "%d seen, none answered" % row.get("conns_seen", 0)
    if SCENARIOS[row["scenario"]].get("ws"):
        # wsload opens them all first and redials only after an error
        extra = ", ~%d TCP opens/run machine-wide" % row["conns_opened"] \
            if row["conns_opened"] > 2 * row["conns"] else ""
        return "%d seen (WebSocket%s)" % (row.get("conns_seen", row["conns"]), extra)
    if keeps_alive(row):
        extra = ""
        if row["conns_opened"] > 2 * row["conns"]:
            extra = ", ~%d TCP opens/run machine-wide" % row["conns_opened"]
        return "%d seen (keep-alive%s)" % (row.get("conns_seen", row["conns"]), extra)
    n = row["conns_opened"]
    per_req = min(1.0, n / max(1, row["requests"] / max(1, row["runs"])))
    return "~%s opened/run, ~%.0f%% of requests (no keep-alive)" % (
        ("%.1fk" % (n / 1000.0)) if n >= 1000 else str(int(n)), 100 * per_req)


def fmt_spread(row):
    """(max - min) / median of the measured runs' req/s."""
    v = [d["rps"] for d in row.get("runs_detail", [])]
    if len(v) < 2 or not row["rps"]:
        return "—"
    return "%.0f%%" % (100.0 * (max(v) - min(v)) / row["rps"])


def fmt_cpu(row):
    if "server_cpu_pct" not in row:
        return "?"
    return "%.0f%% / %.0f%%" % (row["server_cpu_pct"], row["others_cpu_pct"])


def fmt_rps(v):
    return "{:,.0f}".format(v)


def usable(row):
    """A measured row whose number can be compared (no failure, errors, starvation)."""
    return (not row.get("failed") and not row.get("errors") and row.get("rps", 0) > 0
            and not any("starves" in f for f in flags(row)))


def peers_of(scenario):
    """The servers whisk is compared with in a scenario: nginx for static
    files, else the default WSGI servers (diagnostic variants excluded)."""
    return SCENARIOS[scenario].get("peers") or [s for s in DEFAULT_SERVERS if s not in WHISK_SERVERS]


def best_peer(rows, among):
    """Fastest usable row among the given servers."""
    peers = [r for r in rows if r["server"] in among and usable(r)]
    return max(peers, key=lambda r: r["rps"]) if peers else None


def capacity(server):
    """sleep50's limit for a server: requests it can run at once / 0.05 s."""
    return CONCURRENCY.get(server, PROCESSES * THREADS) / SLEEP


def row_notes(scenario, r):
    """Scenario-specific notes of a measured row (after its flags)."""
    notes = []
    if scenario == "sleep50":
        notes.append("%.0f%% of its capacity (%d at once / 50 ms = %.0f req/s)" % (
            100.0 * r["rps"] / capacity(r["server"]), CONCURRENCY.get(r["server"], PROCESSES * THREADS),
            capacity(r["server"])))
    if r.get("idle"):
        i = r["idle"]
        if r.get("baseline_rps"):
            notes.append("**%.0f%% of its plain hello** (%s req/s%s)" % (
                100.0 * r["rps"] / r["baseline_rps"], fmt_rps(r["baseline_rps"]),
                ", %d errors" % r["baseline_errors"] if r.get("baseline_errors") else ""))
        notes.append("idle clients: %d/%d connected at start, %d at the least%s" % (
            i["established_at_start"], i["target"], i["open_min"],
            ", %d closed by the server (reopened)" % i["closed_by_server"] if i["closed_by_server"] else ""))
    if r["server"] == "whisk" and r.get("rss_max_kb"):
        notes.append("front RSS max %.1f MB" % (r["rss_max_kb"] / 1024.0))
    return notes


def whisk_row(results, scenario):
    r = (results or {}).get(scenario, {}).get("whisk")
    return r if r and not r.get("failed") else None


def scenario_table(scenario, rows, results=None):
    """One scenario's Markdown table; `results` (all scenarios) adds the
    comparisons between scenarios (hello vs ceiling)."""
    if SCENARIOS[scenario].get("memory"):
        return memory_table(rows)
    sc = SCENARIOS[scenario]
    rows = sorted(rows, key=lambda r: (r.get("failed") is not None, -r.get("rps", 0)))
    whisk = next((r for r in rows if r["server"] == "whisk" and not r.get("failed")), None)
    lines = ["### %s" % sc["title"], ""]
    lines.append("| server | %s (median) | spread | p99 latency | errors | TCP connections "
                 "| CPU server / others | runs | whisk × | notes |" % sc.get("unit", "req/s"))
    lines.append("|---|---:|---:|---:|---:|---|---|---|---:|---|")
    for r in rows:
        name = r["server"] if r["server"] not in DIAGNOSTIC_SERVERS else "%s *(diagnostic)*" % r["server"]
        if r.get("failed"):
            lines.append("| %s | — | — | — | — | — | — | — | — | ⚠ %s |" % (name, "; ".join(flags(r))))
            continue
        ratio = ""
        if whisk and r["server"] != "whisk" and r["rps"]:
            ratio = "%.2f×" % (whisk["rps"] / r["rps"])
        elif whisk and r["server"] != "whisk":
            ratio = "∞"
        notes = flags(r)
        warn = any(("error" in f) or ("starves" in f) or ("busy" in f) or ("stalled" in f) for f in notes)
        notes += row_notes(scenario, r)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt_rps(r["rps"]), fmt_spread(r),
            ("%.2f ms" % r["p99_ms"]) if r["p99_ms"] is not None else "?",
            ("⚠ %d" % r["errors"]) if r["errors"] else "0",
            fmt_conns(r), fmt_cpu(r), "%d × %d s" % (r["runs"], r["duration"]), ratio,
            ("⚠ " if warn else "") + "; ".join(notes)))
    if not any(r["server"] == "whisk" for r in rows):
        lines.append("| whisk | pending | | | | | | | | not measured yet (does not build / not run) |")
    bp = best_peer(rows, peers_of(scenario))
    unit = sc.get("unit", "req/s")
    lines.append("")
    if whisk and bp:
        lines.append("whisk vs best peer (%s, %s %s): **%.2f×**" % (bp["server"], fmt_rps(bp["rps"]), unit,
                                                                 whisk["rps"] / bp["rps"]))
    elif bp:
        lines.append("Best peer: %s (%s %s). whisk: pending." % (bp["server"], fmt_rps(bp["rps"]), unit))
    if scenario in ASGI_SCENARIOS and whisk:
        vs = ["%s **%.2f×**" % (n, whisk["rps"] / r["rps"]) for n in ("uvicorn", "granian-asgi")
              for r in rows if r["server"] == n and usable(r)]
        if vs:
            lines.append("")
            lines.append("whisk vs %s (measured in the same run)." % ", vs ".join(vs))
    hello, ceiling = whisk_row(results, "hello"), whisk_row(results, "ceiling")
    if scenario in ("hello", "ceiling") and hello and ceiling:
        if lines[-1]:
            lines.append("")
        lines.append("whisk's Python path (hello, %s req/s) reaches **%.0f%%** of the ceiling, the same "
                     "13 bytes from its Go front alone (%s req/s)."
                     % (fmt_rps(hello["rps"]), 100.0 * hello["rps"] / ceiling["rps"], fmt_rps(ceiling["rps"])))
    lines.append("")
    extra = " -H '%s'" % "' -H '".join(sc["headers"]) if sc.get("headers") else ""
    if sc.get("ws"):
        lines.append("_bench/wsload -c %d -msg '%s' (round trips of a %d-byte text message, every echo "
                     "checked; p99 of the round-trip time); each server: warm-up run (discarded), then "
                     "the runs shown; medians._" % (sc["conns"], WS_MESSAGE, len(WS_MESSAGE)))
    else:
        lines.append("_wrk -t2 -c%d%s; each server: warm-up run (discarded), then the runs shown; medians._"
                     % (sc["conns"], extra))
    if sc.get("idle"):
        lines.append("")
        lines.append("_Each measured run is a plain hello run (no idle clients) followed by one with %d "
                     "idle clients opened first and held for the whole run (half send nothing, half a "
                     "partial request head and one more header line a second; one the server closes is "
                     "reopened); the req/s shown is the second, the percentage compares the two._"
                     % sc["idle"])
    return "\n".join(lines)


def fmt_mb(kb):
    return "%.1f MB" % (kb / 1024.0) if kb else "?"


def memory_table(rows):
    """The memory scenario: RSS and PSS of each server's whole process tree."""
    sc = SCENARIOS["memory"]
    rows = sorted(rows, key=lambda r: (r.get("failed") is not None, r.get("tree_load_pss_kb") or 0))
    lines = ["### %s" % sc["title"], ""]
    lines.append("| server | processes | PSS idle | PSS under load | RSS idle | RSS under load "
                 "| req/s under load | notes |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r.get("failed"):
            lines.append("| %s | — | — | — | — | — | — | ⚠ %s |" % (r["server"], "; ".join(flags(r))))
            continue
        notes = flags(r)
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s%s |" % (
            r["server"], r.get("processes", 0), fmt_mb(r.get("tree_idle_pss_kb")),
            fmt_mb(r.get("tree_load_pss_kb")), fmt_mb(r.get("tree_idle_rss_kb")),
            fmt_mb(r.get("tree_load_rss_kb")), fmt_rps(r["rps"]),
            "⚠ " if notes else "", "; ".join(notes)))
    lines.append("")
    lines.append("_Sums over the server's whole process tree (every process of its group and their "
                 "descendants: fronts, masters, workers; nginx and gunicorn for nginx-gunicorn) of "
                 "`Rss` and `Pss` from `/proc/PID/smaps_rollup`. RSS counts pages shared between "
                 "processes (copy-on-write after fork, libraries) once per process; PSS splits them, "
                 "so the PSS sum is what the stack really costs. Idle: 1 s after a warm-up wrk run "
                 "(at least 2 s); under load: the sample (every 0.5 s) with the most PSS during the "
                 "measured wrk runs at c=%d against the Django JSON view._" % sc["conns"])
    return "\n".join(lines)


def targets_table(results):
    """whisk's goals (issue 7), evaluated on the stored results. A whisk row
    with errors (or starvation) fails every target it is part of."""
    def ratio_vs(sc, among=None):
        rows = list(results.get(sc, {}).values())
        w = results.get(sc, {}).get("whisk")
        bp = best_peer(rows, among or peers_of(sc))
        if not w or w.get("failed") or not bp:
            return None, None, bp
        return w, w["rps"] / bp["rps"], bp

    def status(ok, text, w):
        if not usable(w):
            return "FAIL — whisk flagged (%s); %s" % ("; ".join(flags(w)), text)
        return "%s — %s" % ("PASS" if ok else "FAIL", text)

    lines = ["| target | status |", "|---|---|"]
    w, ratio, bp = ratio_vs("hello", PEERS_FOR_HELLO_TARGET)
    gr = results.get("hello", {}).get("granian")
    gr = gr if gr and usable(gr) else None
    if w:
        ok = ratio >= 2.0 and (gr is None or w["rps"] >= 1.3 * gr["rps"])
        st = status(ok, "%.2f× %s%s" % (ratio, bp["server"],
                                        (", %.2f× granian" % (w["rps"] / gr["rps"])) if gr else ""), w)
    else:
        st = "pending"
    lines.append("| hello keep-alive ≥ 2× best of gunicorn/uWSGI/mod_wsgi, and ≥ 1.3× Granian | %s |" % st)
    w, ratio, bp = ratio_vs("json")
    st = status(ratio >= 1.2, "%.2f× %s" % (ratio, bp["server"]), w) if w else "pending"
    lines.append("| Django JSON ≥ 1.2× best peer | %s |" % st)
    parts, allok, wrows = [], True, []
    for sc in RATIO_SCENARIOS:
        w, ratio, bp = ratio_vs(sc)
        if w:
            wrows.append(w)
            allok &= ratio >= 1.0 and usable(w)
            parts.append("%s %.2f× (%s)" % (sc, ratio, bp["server"]))
    lines.append("| no scenario below 1.0× best peer (%s) | %s |" % (
        ", ".join(RATIO_SCENARIOS),
        ("%s — %s" % ("PASS" if allok else "FAIL", ", ".join(parts))) if wrows else "pending"))
    parts, allok, wrows = [], True, []
    for sc in STATIC_SCENARIOS:
        w, ratio, bp = ratio_vs(sc)
        if w:
            wrows.append(w)
            allok &= ratio >= 0.9 and usable(w)
            parts.append("%s %.2f×" % (sc, ratio))
    verdict = "FAIL" if not allok else ("PASS" if len(wrows) == len(STATIC_SCENARIOS) else "partly measured")
    lines.append("| static files (100 KiB, 1 MiB) ≥ 0.9× nginx (aim: 1.0×) | %s |" % (
        ("%s — %s" % (verdict, ", ".join(parts))) if wrows else "pending"))
    w = whisk_row(results, "sleep50")
    st = status(w["rps"] >= 0.95 * capacity("whisk"), "%.1f%% of %.0f req/s" % (
        100.0 * w["rps"] / capacity("whisk"), capacity("whisk")), w) if w else "pending"
    lines.append("| 50 ms sleep, c=100: ≥ 95%% of processes × threads / 0.05 s (%d × %d / 0.05 s) | %s |"
                 % (PROCESSES, THREADS, st))
    w = whisk_row(results, "slow-clients")
    st = status(w["rps"] >= 0.9 * w["baseline_rps"], "%.0f%% (%s of %s req/s)" % (
        100.0 * w["rps"] / w["baseline_rps"], fmt_rps(w["rps"]), fmt_rps(w["baseline_rps"])), w) \
        if w and w.get("baseline_rps") else "pending"
    lines.append("| %d idle slow clients: whisk keeps ≥ 90%% of its own hello throughput | %s |"
                 % (IDLE_CLIENTS, st))
    rss = [r["rss_max_kb"] for r in (results.get(sc, {}).get("whisk") for sc in ("hello", "json"))
           if r and not r.get("failed") and r.get("rss_max_kb")]
    lines.append("| whisk front RSS < 30 MB (max during hello and JSON) | %s |" % (
        ("%s — %.1f MB" % ("PASS" if max(rss) < 30 * 1024 else "FAIL", max(rss) / 1024.0)) if rss else "pending"))
    w, g = (results.get("memory", {}).get(n) for n in ("whisk-preload", "gunicorn-gthread"))
    w = w if w and not w.get("failed") else None
    g = g if g and not g.get("failed") else None
    if w and g and w.get("tree_load_pss_kb") and g.get("tree_load_pss_kb"):
        ok = (w["tree_idle_pss_kb"] < g["tree_idle_pss_kb"] and w["tree_load_pss_kb"] < g["tree_load_pss_kb"])
        st = "%s — idle %s vs %s, under load %s vs %s" % (
            "PASS" if ok else "FAIL", fmt_mb(w["tree_idle_pss_kb"]), fmt_mb(g["tree_idle_pss_kb"]),
            fmt_mb(w["tree_load_pss_kb"]), fmt_mb(g["tree_load_pss_kb"]))
    else:
        st = "pending"
    lines.append("| Django with --preload: whisk's total PSS < gunicorn gthread's (2 × 8), idle and under load "
                 "| %s |" % st)
    return "\n".join(lines)


def asgi_targets_table(results):
    """Issue 6's ASGI goal on the stored results: hello ≥ 1.3× uvicorn and
    ahead of Granian (ASGI); the WebSocket echo ratios for information."""
    lines = ["| target | status |", "|---|---|"]
    for sc, goal, text in (
            ("asgi-hello", True, "ASGI hello keep-alive ≥ 1.3× uvicorn, and ahead of Granian (ASGI)"),
            ("ws-echo", False, "WebSocket echo round trips (no target: for information)")):
        rows = results.get(sc, {})
        w = rows.get("whisk")
        peers = {n: rows[n] for n in ("uvicorn", "granian-asgi") if n in rows and usable(rows[n])}
        if not w or w.get("failed") or not peers:
            lines.append("| %s | pending |" % text)
            continue
        vs = ", ".join("%.2f× %s" % (w["rps"] / r["rps"], n) for n, r in peers.items())
        if not goal:
            lines.append("| %s | %s%s |" % (text, vs, "" if usable(w) else
                                            " — whisk flagged (%s)" % "; ".join(flags(w))))
            continue
        u, g = peers.get("uvicorn"), peers.get("granian-asgi")
        ok = u is not None and w["rps"] >= 1.3 * u["rps"] and (g is None or w["rps"] > g["rps"])
        if usable(w):
            st = "%s — %s" % ("PASS" if ok else "FAIL", vs)
        else:
            st = "FAIL — whisk flagged (%s); %s" % ("; ".join(flags(w)), vs)
        lines.append("| %s | %s |" % (text, st))
    return "\n".join(lines)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return [
        ("CPUs (nproc)", sh("nproc")),
        ("CPU model", cpu),
        ("Memory", mem),
        ("Kernel", platform.release()),
        ("OS", "Debian " + sh("cat /etc/debian_version")),
        ("Python (bench/.venv: whisk, gunicorn, uWSGI, Granian, waitress, uvicorn, daphne, hypercorn)",
         sh("%s/bin/python -V" % VENV)),
        ("Python (bench/.venv-system: Apache mod_wsgi)", sh("%s/bin/python -V" % VENV_SYS)),
        ("Go", sh("go version")),
        ("wrk", sh("dpkg-query -W -f='${Version}' wrk")),
        ("Apache", sh("dpkg-query -W -f='${Version}' apache2")),
        ("nginx", sh("dpkg-query -W -f='${Version}' nginx")),
        ("mod_wsgi (libapache2-mod-wsgi-py3)", sh("dpkg-query -W -f='${Version}' libapache2-mod-wsgi-py3")),
    ]


def pinned_versions():
    out = []
    for fn in ("requirements.txt", "requirements-system.txt"):
        with open(os.path.join(BENCH, fn)) as f:
            pins = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        out.append((fn, pins))
    return out


def display_argv(row):
    """Command line with machine-specific bits made readable."""
    s = " ".join(shlex.quote(a) for a in row["argv"])
    s = s.replace(":%d" % row["port"], ":PORT").replace("--port %d" % row["port"], "--port PORT")
    s = s.replace(" -p %d " % row["port"], " -p PORT ")  # daphne
    s = s.replace(REPO + "/", "")
    # the run's temp dir, and a server's private dir inside it, both read $TMP
    s = re.sub(r"/tmp/whisk-bench-[^\s/]+(/whisk-bench-[^\s/]+)?", "$TMP", s)
    return s


def render_docs(results, commands):
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = []
    out.append("# whisk benchmarks")
    out.append("")
    out.append("<!-- Generated by bench/run.py; edit the template in bench/run.py, not this file. -->")
    out.append("")
    out.append("whisk (Go HTTP front + supervised Python WSGI workers) against the usual "
               "Python WSGI servers, every one configured with **2 processes × 8 threads** "
               "(gunicorn's sync worker has no threads), bound to 127.0.0.1, no access log; "
               "and, for static files, whisk's front against Debian's nginx. "
               "ASGI apps (whisk against uvicorn, Granian, daphne and hypercorn) have "
               "[their own section](#asgi).")
    out.append("")
    out.append("Produced by (last refreshed %s):" % now)
    out.append("")
    out.append("```sh")
    out.extend(commands)
    out.append("```")
    out.append("")
    out.append("## Targets")
    out.append("")
    out.append("whisk's goals (issue 7); ratios are whisk's median req/s over the peer's. "
               "\"Best peer\" is the fastest of %s, " % ", ".join(peers_of("hello")) +
               "ignoring rows flagged with errors or starved connections; "
               "the static-file scenarios are judged against nginx alone, measured in the same run; "
               "the 50 ms sleep against its capacity, the idle-clients run against whisk's own "
               "plain hello.")
    out.append("")
    out.append(targets_table(results))
    out.append("")
    out.append("whisk is work in progress: see \"Measured build\" under *Server command lines* "
               "for the exact state these whisk numbers come from, and "
               "[performance.md](performance.md) for the profiles behind the misses and what would close them.")
    out.append("")
    out.append("## Results")
    out.append("")
    for sc in SCENARIO_ORDER:
        if sc in ASGI_SCENARIOS:
            continue
        rows = list(results.get(sc, {}).values())
        if rows:
            out.append(scenario_table(sc, rows, results))
            out.append("")
    out.append("Columns: *errors* = wrk's non-2xx responses + socket errors (connect/read/write/timeout), "
               "summed over the measured runs; any non-zero value is flagged ⚠. "
               "*TCP connections*: distinct client connections to the port seen by sampling "
               "`ss` every 0.5 s during a run; equal to wrk's connection count when keep-alive works. "
               "When it does not, the growth of the kernel's `Tcp: ActiveOpens` counter "
               "(`/proc/net/snmp`, machine-wide, so approximate) per run is shown instead. "
               "*spread* = (max − min) / median of the runs' req/s. "
               "*CPU server / others* = share of the whole machine (100% = all CPUs) used during the run "
               "by the server's process tree, and by processes that are neither the server, wrk nor "
               "the harness (median over runs; a run with others > 10% is redone up to `--retries` times, "
               "then the least disturbed attempt is kept, and the row is flagged if the median stays > 10%). "
               "*whisk ×* = whisk req/s ÷ that server's req/s. "
               "Servers marked *(diagnostic)* are alternative configurations kept for evidence "
               "(see Fairness notes); they never count as \"best peer\".")
    out.append("")
    out.extend(render_asgi(results))
    out.append("## Method")
    out.append("")
    out.append(METHOD_TEXT)
    out.append("")
    out.append("## Machine")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    for k, v in machine_info():
        out.append("| %s | %s |" % (k, v))
    out.append("")
    out.append("Pinned Python packages (`bench/requirements*.txt`):")
    out.append("")
    for fn, pins in pinned_versions():
        out.append("- `%s`: %s" % (fn, ", ".join("`%s`" % p for p in pins)))
    out.append("")
    out.append("## Server command lines")
    out.append("")
    out.append("As run for the hello scenario (`PORT` is a free port picked per run; "
               "other scenarios only change the app directory/module; the static ones add "
               "`--static /static/=$TMP/static` to whisk). Paths are relative to the repo root.")
    out.append("")
    seen = {}
    for sc in SCENARIO_ORDER:
        if sc in ASGI_SCENARIOS:
            continue
        for name, row in results.get(sc, {}).items():
            seen.setdefault(name, row)
    for name in DEFAULT_SERVERS + [s for s in SERVERS if s not in DEFAULT_SERVERS + ASGI_PEERS]:
        if name not in seen and name != "whisk":
            continue
        out.append("**%s** — %s" % (name, SERVER_NOTES[name]))
        out.append("")
        builds = sorted({r["build"] for sc, rows in results.items() if sc not in ASGI_SCENARIOS
                         for n, r in rows.items() if n == name and r.get("build")})
        if builds:
            out.append("Measured build: %s." % "; ".join(builds))
            out.append("")
        app_row = next((results[sc][name] for sc in APP_SCENARIOS if name in results.get(sc, {})), None)
        static_row = next((results[sc][name] for sc in FILE_SCENARIOS if name in results.get(sc, {})), None)
        out.append("```sh")
        if app_row or name == "whisk":
            if static_row:
                out.append("# app scenarios")
            out.append(display_argv(app_row) if app_row else
                       "bench/.bin/whisk serve --bind 127.0.0.1:PORT --processes 2 --threads 8 "
                       "--chdir bench/apps --python bench/.venv hello:application")
        if static_row:
            if name == "whisk":
                out.append("# static scenarios")
            out.append(display_argv(static_row))
        out.append("```")
        out.append("")
    out.append("Apache configuration (generated per run into a private temp dir, `bench/run.py` `APACHE_CONF`):")
    out.append("")
    out.append("```apache")
    out.append(APACHE_CONF.format(tmp="$TMP", port="PORT", mods=APACHE_MODULES, mod_wsgi=MOD_WSGI_SO,
                                  procs=PROCESSES, threads=THREADS, venv="bench/.venv-system",
                                  appdir="bench/apps", script="bench/apps/hello.py").rstrip())
    out.append("```")
    out.append("")
    out.append("nginx configuration (generated per run into a private temp dir, `bench/run.py` `NGINX_CONF` "
               "with `NGINX_STATIC` for the static scenarios; `user www-data;` is only written when the "
               "harness runs as root):")
    out.append("")
    out.append("```nginx")
    out.append(NGINX_CONF.format(user="user www-data;\n", workers=os.cpu_count() or 1, tmp="$TMP",
                                 port="PORT", locations=NGINX_STATIC.format(static="$TMP/static")).rstrip())
    out.append("```")
    out.append("")
    out.append("nginx-gunicorn: the same `NGINX_CONF` with `NGINX_PROXY` as its server's locations:")
    out.append("")
    out.append("```nginx")
    out.append(NGINX_PROXY.format(sock="$TMP/gunicorn.sock"))
    out.append("```")
    out.append("")
    out.append(FAIRNESS_TEXT)
    return "\n".join(out) + "\n"


def render_asgi(results):
    """docs/benchmarks.md's ASGI section (issue 6): its own targets, tables,
    method, command lines and notes; [] while nothing is measured."""
    rows_by_sc = {sc: list(results.get(sc, {}).values()) for sc in ASGI_SCENARIOS}
    if not any(rows_by_sc.values()):
        return []
    out = ["## ASGI", ""]
    out.append("whisk serving a plain ASGI 3 app (`--interface asgi`) against uvicorn, Granian's "
               "ASGI interface, daphne and hypercorn: **2 worker processes each** (daphne: 1, it has "
               "no multi-process mode), uvloop wherever the server can use it, bound to 127.0.0.1, "
               "no access log. Ratios are whisk's median over the peer's, measured in the same run. "
               "Produced by:")
    out.append("")
    out.append("```sh")
    out.extend(sorted({r["command"] for rows in rows_by_sc.values() for r in rows if r.get("command")}))
    out.append("```")
    out.append("")
    out.append("(`bench/run.sh` alone runs these scenarios too, after the WSGI ones.)")
    out.append("")
    out.append(asgi_targets_table(results))
    out.append("")
    for sc in ASGI_SCENARIOS:
        if rows_by_sc[sc]:
            out.append(scenario_table(sc, rows_by_sc[sc], results))
            out.append("")
    out.append(ASGI_METHOD_TEXT)
    out.append("")
    out.append("### ASGI server command lines")
    out.append("")
    out.append("As run for asgi-hello (ws-echo runs the same commands; `PORT` is a free port picked per run).")
    out.append("")
    for name in ASGI_SERVERS:
        row = next((results[sc][name] for sc in ASGI_SCENARIOS if name in results.get(sc, {})), None)
        if not row:
            continue
        note = "Go front + 2 Python worker processes, each one asyncio event loop (uvloop)." \
            if name == "whisk" else SERVER_NOTES[name]
        out.append("**%s** — %s" % (name, note))
        out.append("")
        builds = sorted({r["build"] for sc in ASGI_SCENARIOS for n, r in results.get(sc, {}).items()
                         if n == name and r.get("build")})
        if builds:
            out.append("Measured build: %s." % "; ".join(builds))
            out.append("")
        out.append("```sh")
        out.append(display_argv(row))
        out.append("```")
        out.append("")
    out.append(ASGI_FAIRNESS_TEXT)
    out.append("")
    return out


ASGI_METHOD_TEXT = """\
### ASGI method

- App: `bench/apps/asgi_hello.py`, a plain ASGI 3 coroutine (no framework): any HTTP request
  gets the 13-byte `text/plain` hello (the WSGI hello's body, with `content-length`); a
  WebSocket is accepted and every message sent back as it came (text as text, bytes as
  bytes); lifespan startup/shutdown are acknowledged.
- `asgi-hello`: wrk exactly as for the WSGI hello (`wrk -t2 -c64`, keep-alive, `GET /`).
- `ws-echo`: `bench/wsload`, a small Go load generator (github.com/coder/websocket, the
  library whisk's front uses, already in go.mod), built by `bench/run.py` into the run's
  temp dir (`go build ./bench/wsload`). It opens 64 connections to `ws://127.0.0.1:PORT/ws`
  first (handshakes are not timed), then each connection sends a 13-byte text message,
  waits for the echo and compares it, over and over for the run's duration; round trips/s
  = round trips completed within the duration ÷ the duration, p99 = the 99th percentile of
  the round-trip times. Errors: failed handshakes (connect), read/write errors and
  timeouts (the connection is then redialled) and echoes that differ (mismatch). No
  permessage-deflate (the client does not offer it). At the end every connection is closed
  with 1000. Like wrk it runs on the same 2 CPUs as the server (GOMAXPROCS 2).
- Same harness otherwise: fresh server per (scenario, server), a checked response (the
  hello; for ws-echo also one connection echoing a text, a binary and a text message, via
  `wsload -check`), a 2 s warm-up run, N measured runs, medians, CPU and connection sampling.
- **uvloop**: pinned in `bench/requirements.txt`. uvicorn, Granian and hypercorn are told to
  use it; whisk's ASGI worker uses uvloop whenever the interpreter can import it, and
  whisk runs with `--python bench/.venv`, so that pin is what puts whisk on uvloop too
  (without it, whisk would run the stdlib asyncio loop)."""

ASGI_FAIRNESS_TEXT = """\
### ASGI fairness notes

- **Same process budget where the server allows it**: 2 worker processes. daphne has no
  worker-process option (one Twisted reactor per process; using more cores takes several
  daphne processes started by a process manager, sharing a socket with `--fd`, or behind
  a load balancer), so it runs as the **single process** it supports: its numbers are one
  process's, not comparable 1:1 with the others.
- Every server's front/supervisor process is not counted against the budget (whisk's Go
  front, uvicorn's and hypercorn's supervisor, Granian's main process).
- WebSocket implementations: uvicorn `--ws websockets-sansio` (the websockets package, which
  `uvicorn[standard]` installs, through the protocol `--ws auto` picks; uvicorn's legacy
  `--ws websockets` echoed about 45% fewer round trips in a quick check, `wsproto` about 20%
  fewer), hypercorn wsproto (its only one), daphne autobahn, Granian and whisk their own
  fronts (Rust; Go's coder/websocket). Keep-alive pings (uvicorn's and daphne's every 20 s
  of idleness) never fire during the runs: the connections are never idle.
- Granian: `--blocking-threads` must be 1 for ASGI (its default); `--runtime-threads` 1 (default).
- hypercorn closes a keep-alive connection after 1000 requests (its `keep_alive_max_requests`
  default), so in asgi-hello each of wrk's connections is reopened about once per run (the
  128 connections seen); left at its default like everything else.
- daphne's p99 in asgi-hello (~150 ms) is one process serving 64 connections.
- whisk: `--threads` left at its default (ASGI: the executor for sync code, unused by this
  app), `max_concurrency` at its default (1000 per process, well above the 64 connections
  of the runs).
- No other tuning for any server."""


METHOD_TEXT = """\
- Load generator: `wrk -t2 -cC -dDs --latency URL` (`-s bench/post.lua` for the POST
  scenario, which sends a 1 MiB body). **wrk runs on the same 2-core machine as the
  server**, so the load generator and the server share the CPUs: absolute numbers are
  lower than on separate machines and servers that use fewer CPU cycles per request
  benefit twice. Relative comparisons are what these numbers are for.
- Each (scenario, server) pair gets a freshly started server on a fresh port. The harness
  waits until it answers, checks one real response (body, content type, JSON, 1 MiB length,
  POST echo of 1048576) and that three requests reuse one connection, runs wrk once for
  the warm-up (2 s, discarded), then N measured runs; the table shows the median req/s and
  the median of the runs' p99 latency. The server's whole process group and every
  descendant are then killed and the harness checks that nothing is left and the port is closed.
- During the runs the harness samples (every 0.5 s, `ss -tn`) the accept queue of the
  listening socket and the client connections to it, and, for whisk only, VmRSS of the
  `whisk` front process (`/proc/PID/status`, max over the hello and JSON runs, warm-up
  included); it also reads the TCP ActiveOpens counter and CPU tick counters
  (`/proc/stat`, `/proc/PID/stat`) before and after each run.
- Static scenarios: one file of 100 KiB (102,400 bytes) and one of 1 MiB, random bytes
  written once per harness run into its temp dir (`$TMP/static/100k.bin`, `1m.bin`), the
  same files for both servers, fetched as `GET /static/100k.bin` over keep-alive at c=64
  (no `Accept-Encoding`, so no precompressed variant is looked for). The smoke test compares
  the whole body with the file. whisk serves them from its Go front (`--static`); its
  2 Python workers are started with the hello app but never hit.
- Apps: `bench/apps/hello.py` (13-byte text/plain), `bench/apps/sleep.py` (sleeps 50 ms,
  then 11 bytes), `bench/apps/big.py` (1 MiB GET body;
  POST reads the whole body and returns its length), `bench/djangoapp/` (`django-admin
  startproject` output with DEBUG=False, ALLOWED_HOSTS=['*'], default middleware and
  apps kept; `GET /json/` returns a small dict via `JsonResponse`, `GET /page/` renders
  `templates/page.html`, a 19.8 KB page looping over 90 rows; no database access).
- `hello-close` sends `Connection: close` with every request (wrk `-H`), so each request
  is a new TCP connection; the smoke test requires the server to close it.
  `ceiling` is whisk only: the hello body as a 13-byte static file served by whisk's Go
  front (`--static`), i.e. the most the Python path could reach.
  `sleep50` is judged against capacity: requests that can run at once / 0.05 s
  (2 × 8 / 0.05 = 320 req/s for most servers).
- `slow-clients`: before wrk starts, the harness opens 500 more TCP connections (non-blocking,
  up to 3 s to establish) and holds them for the run from a helper thread: the even ones
  send nothing, the odd ones a partial request head (`GET / HTTP/1.1`, `Host`) and then one
  more header line a second; a connection the server closes or answers is reopened. Each
  measured run is a plain hello run followed by this one, on the same server instance.
- `memory`: the Django JSON view; RSS and PSS summed over the server's whole process tree
  (`/proc/PID/smaps_rollup`), once idle (1 s after the warm-up) and as the highest sample
  (every 0.5 s) during the measured runs. whisk runs twice there: as usual, and with
  `--preload` (`whisk-preload`).
- **Noise.** The machine is a small VM shared with other work (builds and tests of other
  engineers). Before each measured run the harness waits (up to 30 s) for a quiet second,
  measures the CPU used by everything else during the run, redoes a disturbed run
  (`--retries`, default 1) and flags rows where others still used > 10% of the CPU.
  Even with nothing else running, repeated runs of one server differ: usually by less
  than 10%, but by up to ~30% for some (see the *spread* column; Granian varies most),
  so treat differences of that order as noise and re-run (`--runs 5`) before drawing
  conclusions from a close call."""

FAIRNESS_TEXT = """\
## Fairness notes

- **Same worker budget everywhere**: 2 processes × 8 threads. Every server also has
  supervising/front processes of its own (whisk's Go front, gunicorn's arbiter, uWSGI's
  master and HTTP router, Granian's main process, Apache's parent and event-MPM
  children); they are not counted against the budget.
- **gunicorn sync** has no threads (2 concurrent requests in total) and no keep-alive:
  it answers `Connection: close`, so every request pays a TCP connect (see the
  *TCP connections* column). `--keep-alive 5` is passed to both gunicorn variants but only the
  gthread worker uses it.
- **uWSGI keep-alive**: with `--http-socket` (workers speak HTTP themselves) uWSGI 2.0
  closes the connection after every response, and without a `Connection: close` header,
  so wrk reports each request as a socket *read* error; `--http-keepalive` (an option of
  the separate HTTP router) and `--add-header "Connection: Keep-Alive"` do not change
  that. `--http11-socket` does keep connections alive, but pins each worker thread to
  one connection until it goes idle: at c=64 with 16 threads, 48 of wrk's connections sit
  in the accept queue for the whole run and are never served. wrk does not report that
  (it only counts completed requests), so its req/s and latency look excellent while 3/4
  of the clients starve. The configuration benchmarked as `uwsgi` is therefore uWSGI's own
  HTTP router (`--http --http-keepalive`) in front of the workers over a unix socket
  (`--http-to`/`--socket`): real keep-alive, no starvation, and architecturally the
  closest to whisk (front process + Python workers). `uwsgi-http-socket` is run too (the
  issue names it; its rows are flagged with those read errors, so it is never the best
  peer); `uwsgi-http11` remains available as `--servers uwsgi-http11`, marked
  *(diagnostic)* (its req/s is what 16 of the 64 connections got).
- **waitress** has no worker processes: one process with 8 threads (`--threads=8`), its
  asyncore front and defaults otherwise (`connection_limit` 100, `channel_timeout` 120 s).
- **nginx-gunicorn**: nginx (Debian's, one worker per CPU) proxies every request over a
  unix socket to gunicorn gthread 2 × 8, with the seed documents' `proxy_pass
  http://unix:...` and headers; nginx keeps the clients' connections alive, but opens a
  new upstream connection per request (no `upstream { keepalive }`, as there) and
  buffers responses (its default). `client_max_body_size 16m` (default 1m).
- **Apache**: `MaxKeepAliveRequests 0` (unlimited, Apache's default is 100) so
  connections are reused as with the other servers; enough event-MPM threads for c=64;
  no access log. mod_wsgi runs in daemon mode with Debian's mod_wsgi 4.9 and Debian's
  Python 3.11.2 (the module is built against it), the others use pyenv's CPython 3.11.7.
- **Granian**: `--runtime-threads` left at its default (1 per worker); access log off
  (its default, made explicit).
- **No other tuning**, for any server (whisk included): buffer sizes, backlogs, timeouts
  are defaults. Example of what that leaves on the table: uWSGI's router reads the
  workers' responses through a page-sized buffer (`--http-buffer-size`, 4 KiB); with
  64 KiB its 1 MiB GET throughput roughly doubled in a quick check on this machine.
- **nginx** (static scenarios only): Debian's package with a generated configuration,
  `worker_processes` = the CPUs (2), `sendfile on`, `tcp_nopush on`, `open_file_cache`
  (cached descriptors and `stat()`s: what nginx users tune for static files; whisk opens
  and stats the file per request), `keepalive_requests 1000000` (default 1000: wrk's
  connections would be reopened), `access_log off`; everything else is nginx's default.
  whisk runs with its defaults (no access log, `write_timeout` 60 s).
- Starvation is flagged: a keep-alive server whose accept queue stays non-empty during
  the run is leaving connections unserved."""


def load_latest():
    try:
        with open(LATEST) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"results": {}, "commands": []}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS + ["nginx"] + ASGI_PEERS),
                    help="comma list from: %s (default: %%(default)s)" % ", ".join(SERVERS))
    ap.add_argument("--scenarios", default=",".join(SCENARIO_ORDER),
                    help="comma list from: %s" % ", ".join(SCENARIO_ORDER))
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run (10)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs, median reported (3)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up run seconds, 0 to skip (2)")
    ap.add_argument("--busy", type=float, default=10.0,
                    help="redo a run if other processes used more than this %% of the machine's CPU (10)")
    ap.add_argument("--retries", type=int, default=1, help="extra attempts for a disturbed run (1)")
    ap.add_argument("--quiet-wait", type=int, default=30,
                    help="before each run, wait up to this many seconds for the machine to be quiet (30)")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--no-store", action="store_true",
                    help="trial run: keep the results in bench/results/run-*.json only; "
                         "latest.json and docs/benchmarks.md stay as they are")
    ap.add_argument("--fresh", action="store_true",
                    help="forget stored results (bench/results/latest.json) before merging")
    ap.add_argument("--docs-only", action="store_true",
                    help="only re-render docs/benchmarks.md from bench/results/latest.json")
    args = ap.parse_args()

    if args.docs_only:
        latest = load_latest()
        with open(DOCS, "w") as f:
            f.write(render_docs(latest["results"], latest["commands"]))
        log("wrote %s from %s" % (DOCS, LATEST))
        return 0

    servers = [s for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            ap.error("unknown server %r" % s)
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r" % s)
    for name in WHISK_SERVERS:
        if name in servers and not os.access(WHISK_BIN, os.X_OK):
            log("%s: %s not built (go build ./cmd/whisk failed or was not run) -- skipping"
                % (name, WHISK_BIN))
            servers.remove(name)
    if "apache" in servers and os.geteuid() != 0:
        log("apache: needs root (User/Group www-data) -- skipping")
        servers.remove("apache")
    for name in ("nginx", "nginx-gunicorn"):
        if name in servers and not os.access(NGINX_BIN, os.X_OK):
            log("%s: %s not installed (bench/run.sh installs it) -- skipping" % (name, NGINX_BIN))
            servers.remove(name)
    pairs = [(sc, name) for sc in scenarios for name in servers if applies(name, sc)]
    if not pairs:
        ap.error("no server of --servers takes part in --scenarios (nginx: static-* only; "
                 "ceiling: whisk only; whisk-preload: memory only; WSGI servers: the app scenarios; "
                 "%s: asgi-hello and ws-echo only)" % ", ".join(ASGI_PEERS))
    for tool in ("wrk", "ss"):
        if not shutil.which(tool):
            sys.exit("%s not found; run bench/run.sh (installs it)" % tool)

    def interrupted(*_):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt
    # SIGINT/SIGTERM unwind normally: the `finally` blocks stop the server
    # under test (and wrk, via subprocess.run); nothing is written then.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    tmp_root = tempfile.mkdtemp(prefix="whisk-bench-")
    os.chmod(tmp_root, 0o755)
    command = "bench/run.sh " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = {}
    if any(SCENARIOS[sc].get("idle") for sc in scenarios):
        raise_fd_limit(4 * IDLE_CLIENTS)
    global WSLOAD
    try:
        if any(sc in FILE_SCENARIOS for sc in scenarios):
            write_static_files(os.path.join(tmp_root, "static"))
        if any(SCENARIOS[sc].get("ws") for sc, _ in pairs):
            WSLOAD = build_wsload(tmp_root)
            if not WSLOAD:
                log("skipping the WebSocket scenarios (no load generator)")
                pairs = [(sc, n) for sc, n in pairs if not SCENARIOS[sc].get("ws")]
        for sc, name in pairs:
            results.setdefault(sc, {})[name] = bench_one(name, sc, args, tmp_root)
    except KeyboardInterrupt:
        log("interrupted: servers stopped, nothing written")
        return 130
    finally:
        cleanup()
        shutil.rmtree(tmp_root, ignore_errors=True)

    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(RESULTS_DIR, "run-%s.json" % stamp), "w") as f:
        json.dump({"command": command, "results": results}, f, indent=1)

    print()
    for sc in SCENARIO_ORDER:
        if sc in results:
            print(scenario_table(sc, list(results[sc].values()), results))
            print()

    if args.no_store:
        print("Targets on this run's rows alone:")
        print()
        print(targets_table(results))
        if any(sc in results for sc in ASGI_SCENARIOS):
            print()
            print(asgi_targets_table(results))
        log("--no-store: bench/results/latest.json and %s left as they are" % DOCS)
        return 1 if any(r.get("failed") for rows in results.values() for r in rows.values()) else 0
    latest = {"results": {}, "commands": []} if args.fresh else load_latest()
    for sc, rows in results.items():
        for name, row in rows.items():
            latest["results"].setdefault(sc, {})[name] = dict(row, command=command)
    used = sorted({row["command"] for rows in latest["results"].values() for row in rows.values()})
    latest["commands"] = used
    with open(LATEST, "w") as f:
        json.dump(latest, f, indent=1)
    print(targets_table(latest["results"]))
    if any(sc in results for sc in ASGI_SCENARIOS):
        print()
        print(asgi_targets_table(latest["results"]))
    if not args.no_docs:
        with open(DOCS, "w") as f:
            f.write(render_docs(latest["results"], used))
        log("wrote %s" % DOCS)
    failed = [(sc, n) for sc, rows in results.items() for n, r in rows.items() if r.get("failed")]
    if failed:
        log("FAILED: %s" % ", ".join("%s/%s" % x for x in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
