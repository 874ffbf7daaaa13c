"""Log format for web, worker and beat: JSON lines (production) or plain text (`make run`).

LOG_FORMAT=json|plain picks one (settings). Every record gets `request_id` (dumont.request_id)
and, inside a Celery task, `task_id` and `task_name`, so one request can be followed from the
web process into the tasks it queued.
"""

import logging
import logging.config

from celery.signals import setup_logging

from dumont.request_id import current_request_id, current_task

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


class ContextFilter(logging.Filter):
    """Adds the request id and the running task to every record (a handler filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is None:
            # Django logs each 4xx/5xx response on `django.request` after the middlewares
            # returned, with the request attached.
            request_id = getattr(getattr(record, "request", None), "request_id", None)
        if request_id is not None:
            record.request_id = request_id
        task = current_task.get()
        if task is not None:
            record.task_id, record.task_name = task
        return True


def logging_config(log_format: str, level: str) -> dict:
    """The LOGGING dict: one stderr handler on the root logger, in the chosen format."""
    if log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
    else:
        # `defaults`: a line outside any request shows "-" where the id would be.
        formatter = {
            "()": "logging.Formatter",
            "fmt": PLAIN_FORMAT,
            "defaults": {"request_id": "-"},
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "dumont.logs.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # uvicorn configures its own plain handlers before Django starts: send its lines (server
        # start, errors) through ours, in the same format.
        "loggers": {
            name: {"handlers": ["console"], "level": level, "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


@setup_logging.connect(dispatch_uid="dumont.logs.setup_logging")
def _configure_celery_logging(loglevel: int | str | None = None, **kwargs) -> None:
    """Worker and beat log like web: with a receiver here Celery leaves the root logger alone.
    Their `--loglevel` still sets the level."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
