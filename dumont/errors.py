"""One error shape for the whole API: {"code": "...", "detail": "..."} (+ "errors" per field)."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import OperationalError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from dumont.exceptions import DumontError

logger = logging.getLogger(__name__)

# A client may retry after this long: the pool replaces a dropped connection at once, and a
# database that restarts or fails over is usually back within seconds.
DATABASE_RETRY_AFTER_SECONDS = 5


def _flatten(errors, prefix=""):
    """Yield (field path, message, code) for every leaf of a DRF ValidationError."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if key != "non_field_errors" else ""
            yield from _flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            is_nested = isinstance(value, dict | list)
            yield from _flatten(value, f"{prefix}[{index}]" if is_nested else prefix)
    else:
        yield prefix, str(errors), getattr(errors, "code", "invalid")


def _validation_body(error: exceptions.ValidationError) -> dict:
    leaves = list(_flatten(error.detail))
    field, message, code = leaves[0] if leaves else ("", "Invalid input.", "invalid")
    fields: dict[str, list[dict[str, str]]] = {}
    for path, text, leaf_code in leaves:
        fields.setdefault(path or "non_field_errors", []).append(
            {"code": leaf_code, "message": text}
        )
    return {
        "code": code,
        "detail": f"{field}: {message}" if field else message,
        "errors": fields,
    }


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error becomes {"code", "detail"} with a stable code."""
    if isinstance(exc, DumontError):
        body = {"code": exc.code, "detail": exc.detail, **exc.extra()}
        return Response(body, status=exc.status_code)
    if isinstance(exc, OperationalError):
        # A dropped connection, a restarting or failed-over server, a pool with no connection
        # to give: the request did nothing (its transaction rolled back), so a retry is safe.
        logger.warning("database unavailable: %s", exc)
        return Response(
            {
                "code": "database_unavailable",
                "detail": _("The database is not answering; try again in a few seconds."),
            },
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    # Django's own Http404 and PermissionDenied (get_object_or_404, ...) get DRF's codes.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = {"code": code, "detail": detail}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response.data["retry_after_seconds"] = int(exc.wait)
    return response


def json_not_found(request, exception=None):
    """handler404: JSON, so API clients never parse an HTML page."""
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)


def json_server_error(request):
    """handler500: the error is logged by Django; the client gets JSON without a traceback."""
    return JsonResponse(
        {"code": "server_error", "detail": "Internal error; it has been logged."}, status=500
    )


def json_bad_request(request, exception=None):
    return JsonResponse({"code": "bad_request", "detail": "Bad request."}, status=400)


def json_forbidden(request, exception=None):
    return JsonResponse({"code": "permission_denied", "detail": "Forbidden."}, status=403)
