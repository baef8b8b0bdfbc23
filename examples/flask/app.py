"""A small Flask app served by whisk.

    python3 -m venv .venv
    .venv/bin/pip install -r requirements.txt
    whisk serve --python .venv --chdir . app:app

Routes: /api/hello (JSON), /form (a form that posts back), /old (a redirect to
/api/hello) and /cookies (sets two cookies).
"""

from flask import Flask, jsonify, make_response, redirect, render_template_string, request, url_for

app = Flask(__name__)

FORM_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flask on whisk</title></head>
<body>
{% if name is not none %}
<p id="thanks">Thanks, {{ name }}! You said: {{ message }}</p>
{% endif %}
<form method="post" action="{{ url_for('form') }}">
  <label>Name <input name="name"></label>
  <label>Message <input name="message"></label>
  <button type="submit">Send</button>
</form>
</body>
</html>
"""


@app.get("/")
def index():
    return redirect(url_for("form"))


@app.get("/api/hello")
def hello():
    """A JSON greeting: /api/hello?name=you."""
    name = request.args.get("name", "world")
    return jsonify(message=f"Hello, {name}!", framework="flask")


@app.route("/form", methods=["GET", "POST"])
def form():
    """GET shows the form; POST thanks the sender (Jinja escapes the values)."""
    if request.method == "POST":
        return render_template_string(
            FORM_PAGE,
            name=request.form.get("name", ""),
            message=request.form.get("message", ""),
        )
    return render_template_string(FORM_PAGE, name=None, message=None)


@app.get("/old")
def old():
    """A page that moved: 302 to /api/hello."""
    return redirect(url_for("hello"), code=302)


@app.get("/cookies")
def cookies():
    """Sets two cookies: two Set-Cookie headers in one response."""
    resp = make_response(jsonify(set=["flavour", "theme"]))
    resp.set_cookie("flavour", "oatmeal", httponly=True, samesite="Lax")
    resp.set_cookie("theme", "dark", max_age=3600, samesite="Lax")
    return resp
