#!/usr/bin/env bash
# testenv.sh creates or refreshes the virtualenv the end-to-end tests run
# Django, Flask, Starlette and FastAPI in, from testdata/requirements-test.txt,
# and prints its path on the last line of stdout (everything else goes to
# stderr):
#
#     export WHISK_TEST_VENV="$(scripts/testenv.sh)"
#
# It is idempotent: the venv holds a stamp with the SHA-256 of the
# requirements file, and when the stamp matches (and the venv's interpreter
# still imports Django, Flask, Starlette and FastAPI) nothing is installed.
# Otherwise the venv is recreated from scratch, so a package dropped from the
# file leaves the venv.
#
# Environment:
#   WHISK_TEST_VENV   where the venv lives (default: REPO/.cache/testenv)
#   PYTHON            the interpreter to build it with (default: python3)
#   WHISK_TESTENV_NO_ENSUREPIP=1  take the no-ensurepip path (to test it)
#
# Needs only a Python 3.11+ and access to PyPI. When the interpreter has no
# ensurepip (Debian's python3 without python3-venv), pip is bootstrapped from
# its wheel on PyPI (or PIP_INDEX_URL), checked against the published SHA-256.
set -euo pipefail
exec 3>&1 1>&2 # fd 3: the real stdout, for the path; the rest to stderr

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
req=$repo/testdata/requirements-test.txt
python=${PYTHON:-python3}
venv=${WHISK_TEST_VENV:-$repo/.cache/testenv}
case $venv in
/*) ;;
*) venv=$PWD/$venv ;;
esac
stamp=$venv/.whisk-requirements.sha256

log() { printf 'testenv: %s\n' "$*"; }

want=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$req")

up_to_date() {
	[[ -f $stamp && $(<"$stamp") == "$want" ]] &&
		"$venv/bin/python" -c 'import django, flask, starlette, fastapi' 2>/dev/null
}

# One run at a time per venv (two `make test` in parallel would otherwise
# both rebuild it); flock is in util-linux, so it is optional.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null; then
	exec 9>"$venv.lock"
	flock 9
fi

if up_to_date; then
	echo "$venv" >&3
	exit 0
fi

# Never wipe a directory that is not a virtualenv: WHISK_TEST_VENV might be a
# typo for something precious.
if [[ -e $venv && ! -f $venv/pyvenv.cfg ]] && [[ -n $(ls -A "$venv" 2>/dev/null) ]]; then
	log "$venv exists, is not empty and is not a virtualenv; not touching it"
	exit 1
fi

log "creating $venv with $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
rm -f "$stamp"
if [[ -z ${WHISK_TESTENV_NO_ENSUREPIP:-} ]] && "$python" -m venv --clear "$venv"; then
	:
else
	# No ensurepip: create the venv without pip, fetch the newest pip wheel
	# from the package index, verify its SHA-256 and run pip from the wheel
	# to install itself.
	log "no ensurepip in $python: creating the venv without pip and bootstrapping pip from the package index"
	"$python" -m venv --clear --without-pip "$venv"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	"$python" - "$tmp" <<'EOF'
import hashlib, html.parser, os, re, sys, urllib.parse, urllib.request

# The newest final pip release that is a pure wheel, from the index's simple
# API page (PEP 503 HTML, which every index serves); PIP_INDEX_URL names a mirror.
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.best = None  # (version, url, sha256)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag != "a" or "data-yanked" in a:
            return
        url, _, frag = a.get("href", "").partition("#")
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        m = re.fullmatch(r"pip-(\d+(?:\.\d+)*)-py3-none-any\.whl", name)
        if m and frag.startswith("sha256="):
            version = tuple(int(p) for p in m.group(1).split("."))
            if self.best is None or version > self.best[0]:
                self.best = (version, urllib.parse.urljoin(index, url), frag[len("sha256="):], name)


links = Links()
with urllib.request.urlopen(index, timeout=60) as r:
    links.feed(r.read().decode("utf-8"))
if links.best is None:
    sys.exit("testenv: no pip wheel with a sha256 at " + index)
_, url, sha256, name = links.best
with urllib.request.urlopen(url, timeout=120) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit("testenv: %s: SHA-256 mismatch" % name)
with open(os.path.join(sys.argv[1], name), "wb") as out:
    out.write(data)
EOF
	whl=$(echo "$tmp"/pip-*.whl)
	"$venv/bin/python" "$whl/pip" install --quiet --no-index --disable-pip-version-check "$whl"
fi

log "installing $req"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
"$venv/bin/python" -c 'import django, flask, starlette, fastapi' # fail here, not in the tests

printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
log "ready: $venv"
echo "$venv" >&3
