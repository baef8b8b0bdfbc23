# A mod_wsgi-style script: exec'd as a module, callable 'application'.
import sibling_helper


def application(environ, start_response):
    body = ("script %s %s" % (__name__.startswith("_whisk_wsgi_"), sibling_helper.VALUE)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
