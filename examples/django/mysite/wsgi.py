"""
WSGI config for mysite project.

It exposes the WSGI callable as a module-level variable named ``application``;
serve it with whisk from the project directory:

    whisk serve --python .venv --chdir . mysite.wsgi:application

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
