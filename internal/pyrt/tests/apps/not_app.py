"""No 'application' here: the callables are app and make_app; number is not callable."""

number = 42


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"app"]


def make_app():
    return app


class Obj:
    inner = staticmethod(app)


obj = Obj()
