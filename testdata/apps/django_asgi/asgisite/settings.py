"""Settings of the ASGI test project: no database, no contrib apps."""

SECRET_KEY = "whisk-e2e-django-asgi-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "asgisite.urls"
ASGI_APPLICATION = "asgisite.asgi.application"
DATABASES = {}
USE_TZ = True
