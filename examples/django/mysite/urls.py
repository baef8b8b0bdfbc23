"""URL configuration for mysite: the admin and the demo app."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo.urls")),
]

if settings.DEBUG:
    # Development only: let Django serve the admin's CSS and JavaScript.
    # In production, run `manage.py collectstatic` and serve STATIC_ROOT
    # as static files instead.
    urlpatterns += staticfiles_urlpatterns()
