"""Request body size limit of the API: 413 with the API's error body, before anything reads it.

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only when `request.body` or `request.POST` is read;
DRF's parsers read the stream themselves, so without this a JSON body of any size is parsed.
"""

from django.conf import settings
from django.http import JsonResponse
from django.utils.translation import gettext


class ApiRequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse(
                    {"code": "bad_request", "detail": gettext("Invalid Content-Length.")},
                    status=400,
                )
            if length > limit:
                detail = gettext("The request body is larger than %(limit)d bytes.") % {
                    "limit": limit
                }
                return JsonResponse({"code": "request_too_large", "detail": detail}, status=413)
        return self.get_response(request)
