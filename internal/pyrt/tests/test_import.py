"""Loading the app: the accepted APP forms, and FAILED frames with a hint for each mistake."""

import os
import sys
import unittest

from . import harness


class LoadTest(unittest.TestCase):
    def serve(self, app, path="/", **kw):
        w = harness.Worker(app, **kw)
        self.addCleanup(w.close)
        w.hello()
        return w.channel().request(path=path)

    def test_module_callable(self):
        self.assertEqual(self.serve("hello:application").body, b"Hello, world!")

    def test_module_alone_means_application(self):
        self.assertEqual(self.serve("hello").body, b"Hello, world!")

    def test_dotted_callable(self):
        self.assertEqual(self.serve("pkg.mod:obj.app").body, b"dotted")

    def test_script_file(self):
        for app in ("apps/script.wsgi", os.path.join(harness.APPS, "script.wsgi")):
            with self.subTest(app=app):
                self.assertEqual(self.serve(app, pythonpath=()).body, b"script True helper")

    def test_script_file_relative_to_chdir(self):
        w = harness.Worker("script.wsgi", "--chdir", harness.APPS, pythonpath=(), cwd="/")
        self.addCleanup(w.close)
        w.hello()
        self.assertEqual(w.channel().request().body, b"script True helper")

    def test_chdir_puts_cwd_on_path(self):
        w = harness.Worker("hello", "--chdir", harness.APPS, pythonpath=(), cwd="/")
        self.addCleanup(w.close)
        w.hello()
        self.assertEqual(w.channel().request().body, b"Hello, world!")

    def test_python_m_entry(self):
        w = harness.Worker("hello", python=sys.executable)
        self.addCleanup(w.close)
        # The -m form: run it directly to check the entry point exists.
        import subprocess
        out = subprocess.run([sys.executable, "-m", "whisk_worker", "--help"], cwd=harness.PYRT,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("--control-fd", out.stdout)
        w.hello()


class FailedTest(unittest.TestCase):
    def failed(self, app, *args, **kw):
        w = harness.Worker(app, *args, **kw)
        self.addCleanup(w.close)
        msg = w.failed()
        self.assertEqual(w.wait(), 3)
        self.assertEqual(set(msg), {"error", "traceback", "hint"})
        self.assertNotIn("\n", msg["error"])
        self.assertNotIn("\n", msg["hint"])
        return msg

    def test_missing_module(self):
        msg = self.failed("mysite.wsgi:application")
        self.assertIn("could not import 'mysite.wsgi'", msg["error"])
        self.assertIn(sys.executable, msg["error"])
        self.assertIn("sys.path starts", msg["error"])
        self.assertIn("run whisk from the directory that contains 'mysite'", msg["hint"])
        self.assertIn("--chdir", msg["hint"])
        self.assertIn("--pythonpath", msg["hint"])
        self.assertIn("--python", msg["hint"])
        self.assertIn("ModuleNotFoundError", msg["traceback"])

    def test_missing_submodule(self):
        msg = self.failed("pkg.nothere:app")
        self.assertIn("no module named 'pkg.nothere'", msg["error"])

    def test_missing_dependency(self):
        msg = self.failed("missing_dep")
        self.assertIn("the app imports 'whisk_no_such_dependency'", msg["error"])
        self.assertIn(sys.executable, msg["error"])
        self.assertIn("install 'whisk_no_such_dependency'", msg["hint"])
        self.assertIn("--python", msg["hint"])
        self.assertIn("missing_dep.py", msg["traceback"])
        self.assertNotIn("frozen importlib", msg["traceback"])

    def test_missing_attribute_lists_callables(self):
        msg = self.failed("not_app")
        self.assertIn("'not_app' has no attribute 'application'", msg["error"])
        self.assertIn("not_app:NAME", msg["hint"])
        self.assertIn("callables found: app, make_app", msg["hint"])
        self.assertNotIn("number", msg["hint"])
        self.assertNotIn("obj", msg["hint"])

    def test_missing_nested_attribute(self):
        msg = self.failed("not_app:obj.nothing")
        self.assertIn("has no attribute 'nothing'", msg["error"])

    def test_not_callable(self):
        msg = self.failed("not_app:number")
        self.assertIn("not_app:number is a int, which is not callable", msg["error"])
        self.assertIn("WSGI callable", msg["hint"])

    def test_syntax_error(self):
        msg = self.failed("broken_syntax")
        self.assertIn("SyntaxError", msg["error"])
        self.assertIn("broken_syntax.py, line 1", msg["error"])
        self.assertIn("fix the syntax error", msg["hint"])
        self.assertIn("SyntaxError", msg["traceback"])

    def test_exception_on_import(self):
        msg = self.failed("raises_on_import")
        self.assertIn("RuntimeError: the database is not configured", msg["error"])
        self.assertIn("raises_on_import.py", msg["traceback"])

    def test_missing_script_file(self):
        msg = self.failed("/nonexistent/site/app.wsgi")
        self.assertIn("cannot read WSGI script '/nonexistent/site/app.wsgi'", msg["error"])
        self.assertIn("check the path", msg["hint"])

    def test_script_without_application(self):
        msg = self.failed(os.path.join(harness.APPS, "not_app.py"))
        self.assertIn("has no attribute 'application'", msg["error"])
        self.assertIn("app, make_app", msg["hint"])

    def test_bad_app_syntax(self):
        for app in ("", "hello:", ":app", "hello:app:x", "a b:c", "hello:1x"):
            with self.subTest(app=app):
                msg = self.failed(app)
                self.assertIn("invalid APP", msg["error"])
                self.assertIn("MODULE:CALLABLE", msg["hint"])

    def test_bad_chdir(self):
        msg = self.failed("hello", "--chdir", "/nonexistent/dir")
        self.assertIn("cannot change to directory '/nonexistent/dir'", msg["error"])


if __name__ == "__main__":
    unittest.main()
