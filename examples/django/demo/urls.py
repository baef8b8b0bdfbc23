from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/hello", views.api_hello, name="api-hello"),
    path("upload", views.upload, name="upload"),
    path("stream", views.stream, name="stream"),
]
