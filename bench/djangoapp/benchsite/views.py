"""Benchmark views (no database access):

GET /json/  a small JSON document via JsonResponse;
GET /page/  an HTML page of about 20 KB rendered from templates/page.html,
            a loop over 90 rows of context data with filters and autoescaping.
"""

from django.http import JsonResponse
from django.shortcuts import render


def json_view(request):
    return JsonResponse({
        "message": "Hello, World!",
        "framework": "django",
        "items": [1, 2, 3],
    })


# Built once per process: the benchmark measures rendering, not data building.
ROWS = [
    {
        "id": i,
        "name": "Product <%d> & friends" % i,  # escaped by the template
        "price": 9.5 + i * 1.25,
        "stock": (i * 37) % 101,
        "tags": ["tag-%d" % (i % 7), "tag-%d" % (i % 11)],
    }
    for i in range(1, 91)
]


def page_view(request):
    return render(request, "page.html", {
        "title": "Benchmark catalogue",
        "rows": ROWS,
        "total": sum(r["stock"] for r in ROWS),
    })
