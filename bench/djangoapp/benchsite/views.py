"""Benchmark view: a small JSON document via JsonResponse (GET /json/)."""

from django.http import JsonResponse


def json_view(request):
    return JsonResponse({
        "message": "Hello, World!",
        "framework": "django",
        "items": [1, 2, 3],
    })
