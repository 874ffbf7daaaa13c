"""The Celery app. Schedules live in django-celery-beat's tables (editable in the admin)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dumont.settings")

# Signal receivers every process needs: web publishes with the request id, worker and beat log
# like web and count task runs.
import dumont.logs
import dumont.metrics
import dumont.request_id  # noqa: F401

app = Celery("dumont")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# dumont/ is the project package, not an installed app: name its task modules explicitly.
app.conf.imports = ("dumont.health",)
