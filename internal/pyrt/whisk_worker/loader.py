"""Finding the app: APP is MODULE[:CALLABLE] or the path of a WSGI script; and
whether it is WSGI or ASGI.

Errors are AppImportError with a one-line message and a one-line hint naming
the fix, in the spirit of uvicorn's importer; the cause stays chained for the
traceback.
"""

import hashlib
import importlib
import inspect
import os
import re
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

FORMS = ("APP is MODULE:CALLABLE (e.g. mysite.wsgi:application, callable may be a dotted path "
         "like pkg.mod:obj.app), MODULE (callable 'application'), or the path of a WSGI script "
         "file (e.g. /srv/site/app.wsgi, which defines 'application')")

_DOTTED = re.compile(r"^[^\W\d]\w*(\.[^\W\d]\w*)*$")


class AppImportError(Exception):
    """The app could not be loaded; str(e) is one line, hint names the fix."""

    def __init__(self, error: str, hint: str) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint


def is_script(target: str) -> bool:
    """Report whether target names a WSGI script file rather than a module."""
    return ("/" in target or target.endswith(".py")
            or (target.endswith(".wsgi") and os.path.isfile(target)))


def parse(spec: str) -> Tuple[str, str, bool]:
    """Split APP into (module or path, callable path, is a script)."""
    target, colon, attr = spec.rpartition(":")
    if not colon:
        target, attr = spec, "application"
    script = is_script(target)
    if not target or not _DOTTED.match(attr) or not (script or _DOTTED.match(target)):
        raise AppImportError("invalid APP %r" % spec, FORMS)
    return target, attr, script


def load(spec: str) -> Callable:
    """Import and return the WSGI callable named by APP."""
    target, attr, script = parse(spec)
    module = load_script(target) if script else import_module(target)
    obj: Any = module
    for i, name in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            where = target if i == 0 else "%s:%s" % (target, ".".join(attr.split(".")[:i]))
            if i == 0:
                found = app_like(module)
                hint = ("pass APP as %s:NAME; callables found: %s"
                        % (_shown(target), ", ".join(found)) if found
                        else "the module defines no callable that looks like a WSGI app; "
                             "check that APP names the right module")
            else:
                hint = "check the attribute path after ':' in APP"
            raise AppImportError("%r has no attribute %r" % (where, name), hint) from None
    if not callable(obj):
        raise AppImportError(
            "%s:%s is a %s, which is not callable" % (_shown(target), attr, type(obj).__name__),
            "point APP at the WSGI callable, an object called as app(environ, start_response)")
    return obj


def is_asgi(app: Any) -> bool:
    """Report whether app is an ASGI 3 app: a coroutine function, or an object
    whose __call__ is one (Django's ASGIHandler, Starlette, FastAPI), like uvicorn's check."""
    if isinstance(app, type):
        return False  # a class: calling it makes an instance (WSGI, or ASGI 2)
    return _coroutine_function(app) or _coroutine_function(getattr(app, "__call__", None))


def _coroutine_function(f: Any) -> bool:
    if f is None:
        return False
    if inspect.iscoroutinefunction(f):
        return True
    # asgiref's markcoroutinefunction before Python 3.12 (asyncio's marker).
    marker = getattr(sys.modules.get("asyncio.coroutines"), "_is_coroutine", None)
    return marker is not None and getattr(f, "_is_coroutine", None) is marker


def interface(app: Any, setting: str, spec: str) -> str:
    """Return "asgi" or "wsgi" for the app loaded from APP spec, given --interface
    (auto, wsgi or asgi); forcing wsgi on an ASGI app is an error."""
    if setting == "asgi":
        return "asgi"
    asgi = is_asgi(app)
    if setting == "wsgi" and asgi:
        raise AppImportError(
            "APP %s is an ASGI app (%s is a coroutine function), but the interface is set to wsgi"
            % (spec, "it" if _coroutine_function(app) else "its __call__"),
            'set interface = "asgi" (or remove the setting: the worker detects ASGI apps)')
    return "asgi" if asgi else "wsgi"


def load_hook(spec: str, setting: str) -> Callable:
    """Import and return the function named by a hook setting ("MODULE:FUNCTION")."""
    name, colon, attr = spec.partition(":")
    if not colon or not _DOTTED.match(name) or not _DOTTED.match(attr):
        raise AppImportError("invalid %s %r" % (setting, spec),
                             "%s is MODULE:FUNCTION, e.g. mysite.hooks:post_fork" % setting)
    try:
        obj: Any = importlib.import_module(name)
    except (Exception, SystemExit) as e:
        raise AppImportError("%s %r: importing %r failed: %s: %s" % (setting, spec, name, type(e).__name__, _one_line(e)),
                             "fix %s or the module it names (see the traceback)" % setting) from e
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise AppImportError("%s %r: %r has no function %r" % (setting, spec, name, attr),
                             "point %s at a function of the module, called with no arguments" % setting)
    return obj


def import_module(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            also = " and no file %r" % name if name.endswith(".wsgi") else ""
            raise AppImportError(
                "could not import %r: no module named %r%s (python %s, sys.path starts %s)"
                % (name, missing, also, sys.executable, _path_head()),
                "run whisk from the directory that contains %r, or pass --chdir DIR or "
                "--pythonpath DIR; if the app is installed in a virtualenv, pass --python "
                "/path/to/venv" % missing.split(".")[0]) from e
        raise _missing_dependency(name, e) from e
    except AppImportError:
        raise
    except (Exception, SystemExit) as e:
        raise _failed(name, e) from e


def load_script(path: str) -> types.ModuleType:
    """Execute a WSGI script file as a module of its own, like mod_wsgi's WSGIScriptAlias."""
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise AppImportError(
            "cannot read WSGI script %r: %s" % (path, e.strerror or e),
            "check the path (relative paths start from %s) or, for a module, use MODULE:CALLABLE"
            % os.getcwd()) from None
    name = "_whisk_wsgi_" + hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # like `python script.py`: its siblings are importable
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except ModuleNotFoundError as e:
        del sys.modules[name]
        raise _missing_dependency(path, e) from e
    except (Exception, SystemExit) as e:
        del sys.modules[name]
        raise _failed(path, e) from e
    return module


# What HELLO reports of a Django project's settings: (key in HELLO, setting, is a directory).
DJANGO_SETTINGS = (
    ("static_url", "STATIC_URL", False),
    ("static_root", "STATIC_ROOT", True),
    ("media_url", "MEDIA_URL", False),
    ("media_root", "MEDIA_ROOT", True),
)


def django_settings() -> Optional[Dict[str, Optional[str]]]:
    """Return the app's Django STATIC_URL, STATIC_ROOT, MEDIA_URL and MEDIA_ROOT for
    HELLO (its "django" field), or None when the app has not configured Django's settings.

    Django is never imported here: only a django.conf the app imported is read, and only
    once its settings are configured (reading them otherwise would load them). Each value
    is a str, or None when the setting is unset or empty. URLs are the settings as written:
    LazySettings would prefix a relative STATIC_URL with the calling thread's script prefix,
    and cache that. Directories are made absolute against the working directory, as
    Django's file storage does.
    """
    conf = sys.modules.get("django.conf")
    settings = getattr(conf, "settings", None) if conf is not None else None
    if settings is None:
        return None
    try:
        if not settings.configured:
            return None
        raw = getattr(settings, "_wrapped", settings)  # Settings or UserSettingsHolder
        out: Dict[str, Optional[str]] = {}
        for key, name, directory in DJANGO_SETTINGS:
            value = getattr(raw, name, None)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value:
                out[key] = None
            else:
                out[key] = os.path.abspath(value) if directory else value
        return out
    except Exception:  # an odd settings object must not keep the worker from serving
        return None


def app_like(module: types.ModuleType) -> List[str]:
    """Return the names of the module's callables that could be WSGI apps."""
    names = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported helper
        names.append(name)
    return names[:10]


def _missing_dependency(target: str, e: ModuleNotFoundError) -> AppImportError:
    missing = e.name or ""
    if missing.split(".")[0] == target.split(".")[0]:
        return AppImportError("importing %r failed: it imports %r, which does not exist" % (target, missing),
                              "check that import in the app's code (see the traceback)")
    return AppImportError(
        "importing %r failed: the app imports %r, which %s cannot find" % (target, e.name, sys.executable),
        "install %r in this interpreter, or pass --python /path/to/venv (the interpreter or "
        "virtualenv that has it)" % (e.name or "").split(".")[0])


def _failed(target: str, e: BaseException) -> AppImportError:
    if isinstance(e, SyntaxError):
        where = "%s, line %s" % (e.filename, e.lineno)
        return AppImportError("importing %r failed: SyntaxError: %s (%s)" % (target, e.msg, where),
                              "fix the syntax error at %s" % where)
    return AppImportError("importing %r failed: %s: %s" % (target, type(e).__name__, _one_line(e)),
                          "fix the error in the app's import-time code (see the traceback)")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _shown(target: str) -> str:
    return target if not is_script(target) else repr(target)


def _path_head(n: int = 4) -> str:
    head: List[Optional[str]] = list(sys.path[:n])
    return repr(head)[:-1] + (", ...]" if len(sys.path) > n else "]")
