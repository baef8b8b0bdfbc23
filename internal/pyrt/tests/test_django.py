"""HELLO's "django" field: where a Django app's static and media files are (docs/protocol.md)."""

import os
import subprocess
import sys
import tempfile
import unittest

from . import harness

KEYS = {"static_url", "static_root", "media_url", "media_root"}


class DjangoHelloTest(unittest.TestCase):
    def hello(self, app, **kw):
        w = harness.Worker(app, **kw)
        self.addCleanup(w.close)
        return w, w.hello()

    def test_configured_settings_are_reported_as_written(self):
        cwd = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, cwd)
        w, hello = self.hello("fake_django", cwd=cwd)
        self.assertEqual(hello["django"], {
            "static_url": "static/",  # not LazySettings' "/script-prefix/static/"
            "static_root": os.path.join(os.path.realpath(cwd), "collected"),  # absolute, from the cwd
            "media_url": "https://cdn.example.com/media/",
            "media_root": None,  # empty: unset
        })
        # HELLO read nothing through LazySettings (which would cache a prefixed STATIC_URL).
        self.assertEqual(w.channel().request().body, b"[]")

    def test_unconfigured_settings_are_not_loaded(self):
        w, hello = self.hello("fake_django", env={"FAKE_DJANGO_CONFIGURED": "0"})
        self.assertNotIn("django", hello)
        self.assertEqual(w.channel().request().body, b"[]")

    def test_no_django(self):
        _, hello = self.hello("hello")
        self.assertNotIn("django", hello)
        self.assertEqual(set(hello), {"pid", "python", "runtime", "wire", "interface"})

    def test_django_is_never_imported(self):
        # With Django installed (the test virtualenv, when there is one), an app that does
        # not use it: HELLO has no "django" and the worker imported none of it.
        w, hello = self.hello("modules", python=venv_python() or sys.executable)
        self.assertNotIn("django", hello)
        self.assertEqual(w.channel().request(query="django").json(), [])


def venv_python():
    """The test virtualenv's interpreter (WHISK_TEST_VENV), if it has Django."""
    venv = os.environ.get("WHISK_TEST_VENV")
    if not venv:
        return None
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        return None
    ok = subprocess.run([python, "-c", "import django"], capture_output=True).returncode == 0
    return python if ok else None


@unittest.skipUnless(venv_python(), "needs WHISK_TEST_VENV with Django")
class RealDjangoTest(unittest.TestCase):
    def test_example_project(self):
        root = os.path.dirname(os.path.dirname(harness.PYRT))
        project = os.path.join(root, "examples", "django")
        with tempfile.TemporaryDirectory() as tmp:
            w = harness.Worker("mysite.wsgi:application", "--chdir", project, pythonpath=(),
                               python=venv_python(),
                               env={"DJANGO_STATIC_ROOT": os.path.join(tmp, "static"),
                                    "WHISK_DJANGO_DB": os.path.join(tmp, "db.sqlite3")})
            self.addCleanup(w.close)
            django = w.hello()["django"]
            self.assertEqual(set(django), KEYS)
            self.assertEqual(django["static_url"], "static/")
            self.assertEqual(django["static_root"], os.path.join(tmp, "static"))
            self.assertEqual(django["media_url"], "media/")
            self.assertTrue(os.path.isabs(django["media_root"]), django["media_root"])


if __name__ == "__main__":
    sys.exit(unittest.main())
