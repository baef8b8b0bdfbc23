"""Imports a module that is not installed: whisk must exit 3 with a hint."""

import whisk_e2e_not_installed  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
