class Holder:
    def app(self, environ, start_response):
        start_response("200 OK", [])
        return [b"dotted"]


obj = Holder()
