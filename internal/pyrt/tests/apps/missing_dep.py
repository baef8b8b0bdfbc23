import whisk_no_such_dependency  # noqa: F401


def application(environ, start_response):
    return []
