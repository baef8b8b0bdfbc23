#!/usr/bin/env bash
# bench/run.sh — whisk benchmark harness (whisk vs gunicorn, nginx+gunicorn, uWSGI,
# Granian, Apache+mod_wsgi, waitress; static files: whisk vs nginx; ASGI: whisk vs
# uvicorn, Granian, daphne, hypercorn), driven by wrk (and bench/wsload for
# WebSockets) against 127.0.0.1.
#
# Usage (from anywhere; needs root for apt and for Apache's User/Group):
#   bench/run.sh                      # everything, defaults: 3 runs x 10 s, 2 s warm-up
#   bench/run.sh --duration 3 --runs 1                         # quick debug run
#   bench/run.sh --servers gunicorn-sync,gunicorn-gthread,uwsgi,granian,apache
#   bench/run.sh --scenarios slow-clients,memory --servers whisk,whisk-preload,gunicorn-gthread
#   bench/run.sh --scenarios hello,json --servers whisk,granian
#   bench/run.sh --scenarios static-100k,static-1m --servers whisk,nginx
#   bench/run.sh --scenarios asgi-hello,ws-echo   # ASGI only (all ASGI servers)
#   bench/run.sh --no-docs            # do not rewrite docs/benchmarks.md (results still stored)
#   bench/run.sh --no-store ...       # trial run: stored results and docs left untouched
#   bench/run.sh --setup-only         # install/build only, no load
#   bench/run.sh --no-setup ...       # skip apt/venv/build steps
#   bench/run.sh --fresh              # forget stored results: docs show only this run
#   bench/run.sh --no-setup --docs-only   # re-render docs/benchmarks.md from stored results
#   bench/run.sh --help               # all options (--busy, --retries, --quiet-wait, ...)
#
# Servers:   whisk gunicorn-sync gunicorn-gthread nginx-gunicorn uwsgi
#            uwsgi-http-socket granian apache waitress nginx, whisk-preload
#            (+ diagnostic, not run by default: uwsgi-http11)
#            nginx serves the static scenarios only, the WSGI servers the others;
#            whisk-preload (whisk --preload) takes part in memory only.
#            ASGI (asgi-hello and ws-echo only; whisk runs --interface asgi):
#            uvicorn granian-asgi daphne hypercorn
# Scenarios: hello (keep-alive, c=64), ceiling (whisk only: the hello body as a
#            static file from whisk's Go front), hello-close (Connection: close),
#            sleep50 (50 ms sleep, c=100), json (Django JsonResponse, c=64),
#            template (Django template page, ~20 KB, c=64),
#            big-get (1 MiB response, c=16), big-post (1 MiB request body, c=16),
#            slow-clients (hello while 500 idle slow clients hold connections),
#            memory (RSS/PSS of each stack hosting Django, idle and under load),
#            static-100k, static-1m (100 KiB / 1 MiB file, keep-alive, c=64),
#            asgi-hello (ASGI hello, keep-alive, c=64), ws-echo (WebSocket echo
#            round trips on 64 connections, driven by bench/wsload)
#
# What this script does before handing over to bench/run.py (stdlib only):
#   1. apt-installs wrk, apache2, libapache2-mod-wsgi-py3, nginx, python3-venv
#      if missing (services are prevented from starting via policy-rc.d, and
#      a system nginx found listening afterwards is stopped);
#   2. creates bench/.venv (python3) from bench/requirements.txt and
#      bench/.venv-system (Debian /usr/bin/python3, for mod_wsgi) from
#      bench/requirements-system.txt; re-installs only when the files change;
#   3. builds whisk into bench/.bin/whisk (`go build ./cmd/whisk`); if that
#      fails, whisk is skipped with a message and the peers still run.
#      (run.py builds the WebSocket load generator, bench/wsload, into its
#      temp dir when ws-echo is to run.)
# Everything else (starting/stopping servers, wrk, tables, docs) is in run.py.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"

SETUP=1
SETUP_ONLY=0
ARGS=()
for a in "$@"; do
    case "$a" in
        --no-setup) SETUP=0 ;;
        --setup-only) SETUP_ONLY=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exec python3 "$BENCH_DIR/run.py" --help ;;
        *) ARGS+=("$a") ;;
    esac
done

log() { printf '[bench] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- apt packages
# nginx: Debian's package (in bookworm nginx-light is only a transitional
# package on top of it); run.py starts its own instance from a generated config.
APT_PKGS=(wrk apache2 libapache2-mod-wsgi-py3 nginx python3-venv)

install_apt() {
    local missing=()
    for p in "${APT_PKGS[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "missing apt packages (${missing[*]}) and not root; install them first"; exit 1
    fi
    log "installing apt packages: ${missing[*]}"
    # Keep any existing policy-rc.d (e.g. Docker's) and restore it afterwards.
    local prc=/usr/sbin/policy-rc.d backup="" rc=0
    if [ -e "$prc" ]; then backup="$(mktemp)"; cp -p "$prc" "$backup"; fi
    trap 'restore_prc "$backup"; exit 130' INT TERM
    printf '#!/bin/sh\n# written by whisk bench/run.sh during apt-get install\nexit 101\n' > "$prc"
    chmod 755 "$prc"
    { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
    restore_prc "$backup"
    trap - INT TERM
    [ "$rc" = 0 ] || { log "apt-get failed (exit $rc)"; exit "$rc"; }
}

# The Debian package would normally start nginx on port 80; policy-rc.d
# stops that, but make sure: a system nginx (one whose master has
# /run/nginx.pid) must not be running beside the benchmarks.
stop_system_nginx() {
    local pidf=/run/nginx.pid pid
    [ -s "$pidf" ] || return 0
    pid="$(cat "$pidf")"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nginx ]; then
        log "stopping the system nginx (pid $pid) started by the package install"
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -d "/proc/$pid" ] || break; sleep 0.5; done
        [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    fi
    if ss -ltnH 'sport = :80' 2>/dev/null | grep -q .; then
        log "warning: something still listens on port 80 (not used by the benchmarks)"
    fi
}

restore_prc() {
    if [ -n "$1" ]; then mv -f "$1" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
}

# ---------------------------------------------------------------- virtualenvs
# make_venv PYTHON VENV_DIR REQUIREMENTS
make_venv() {
    local py="$1" venv="$2" req="$3" stamp
    stamp="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ -f "$venv/.bench-stamp" ] && [ "$(cat "$venv/.bench-stamp")" = "$stamp" ] \
        && [ -x "$venv/bin/python" ]; then
        return 0
    fi
    log "installing $req into $venv ($("$py" --version 2>&1))"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$stamp" > "$venv/.bench-stamp"
}

# ---------------------------------------------------------------- whisk build
build_whisk() {
    mkdir -p "$BENCH_DIR/.bin"
    local out="$BENCH_DIR/.bin/whisk" tmp="$BENCH_DIR/.bin/whisk.new" errlog="$BENCH_DIR/.bin/build.log"
    if ! command -v go >/dev/null; then
        rm -f "$out"; log "go not found: whisk will be skipped"; return 0
    fi
    log "building whisk (go build ./cmd/whisk)"
    if (cd "$REPO_DIR" && go build -o "$tmp" ./cmd/whisk) >"$errlog" 2>&1; then
        mv -f "$tmp" "$out"
    else
        # Never benchmark a stale binary.
        rm -f "$out" "$tmp"
        log "whisk does not build yet; it will be skipped (see $errlog):"
        head -n 5 "$errlog" | sed 's/^/[bench]   /' >&2
    fi
}

if [ "$SETUP" = 1 ]; then
    install_apt
    stop_system_nginx
    make_venv python3 "$BENCH_DIR/.venv" "$BENCH_DIR/requirements.txt"
    make_venv /usr/bin/python3 "$BENCH_DIR/.venv-system" "$BENCH_DIR/requirements-system.txt"
    build_whisk
fi
[ "$SETUP_ONLY" = 1 ] && { log "setup done"; exit 0; }

exec python3 "$BENCH_DIR/run.py" "${ARGS[@]}"
