"""Has a syntax error on line 4: whisk must exit 3 naming the line."""


def application(environ, start_response)
    start_response("200 OK", [])
    return [b""]
