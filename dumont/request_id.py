"""The request id: one id per HTTP request, on its response, its log lines and its Celery tasks.

Taken from a valid incoming `X-Request-ID` (a load balancer's or a client's) or generated. It
lives in a context variable, so every log line written while the request is served carries it
(dumont.logs adds it to each record), and it rides in the headers of every task the request
publishes, so the worker's log lines of those tasks carry it too; a task that publishes another
passes it on the same way.
"""

import re
import uuid
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.utils.decorators import sync_and_async_middleware

HEADER = "X-Request-ID"
TASK_HEADER = "dumont_request_id"
# Ids of common tracers and load balancers (UUIDs, hex, AWS `Root=1-...`) fit; anything else
# (too long, spaces, quotes, newlines that could forge log lines) is replaced by our own.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# The Celery task being run in this context: (task id, task name).
current_task: ContextVar[tuple[str, str] | None] = ContextVar("celery_task", default=None)


def request_id_from(incoming: str | None) -> str:
    """The incoming id when it is valid, else a new one."""
    if incoming and VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


@sync_and_async_middleware
def request_id_middleware(get_response):
    """First middleware: sets the request id for everything below it and returns it."""

    def begin(request):
        request.request_id = request_id_from(request.headers.get(HEADER))
        return current_request_id.set(request.request_id)

    if iscoroutinefunction(get_response):

        async def middleware(request):
            token = begin(request)
            try:
                response = await get_response(request)
            finally:
                current_request_id.reset(token)
            response[HEADER] = request.request_id
            return response

    else:

        def middleware(request):
            token = begin(request)
            try:
                response = get_response(request)
            finally:
                current_request_id.reset(token)
            response[HEADER] = request.request_id
            return response

    return middleware


@before_task_publish.connect(dispatch_uid="dumont.request_id.publish")
def _add_request_id_to_task(headers: dict | None = None, **kwargs) -> None:
    request_id = current_request_id.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


# Tokens to reset at postrun, by task id: prerun and postrun run in the same worker process and
# thread, one task at a time per thread.
_task_tokens: dict[str, tuple] = {}


@task_prerun.connect(dispatch_uid="dumont.request_id.prerun")
def _enter_task(task_id: str | None = None, task=None, **kwargs) -> None:
    if task_id is None or task is None:
        return
    request_id = task.request.get(TASK_HEADER)
    _task_tokens[task_id] = (
        current_request_id.set(request_id if isinstance(request_id, str) else None),
        current_task.set((task_id, task.name)),
    )


@task_postrun.connect(dispatch_uid="dumont.request_id.postrun")
def _leave_task(task_id: str | None = None, **kwargs) -> None:
    tokens = _task_tokens.pop(task_id, None)
    if tokens is not None:
        request_token, task_token = tokens
        try:
            current_task.reset(task_token)
            current_request_id.reset(request_token)
        except ValueError:  # a pool that ran prerun in another context: forget, never fail
            current_task.set(None)
            current_request_id.set(None)
