"""Error pages: JSON for the API (dumont.errors), HTML for the portal."""

from django.views import defaults

from dumont import errors


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if _is_api(request):
        return errors.json_bad_request(request, exception)
    return defaults.bad_request(request, exception, template_name="portal/400.html")


def forbidden(request, exception):
    if _is_api(request):
        return errors.json_forbidden(request, exception)
    return defaults.permission_denied(request, exception, template_name="portal/403.html")


def not_found(request, exception):
    if _is_api(request):
        return errors.json_not_found(request, exception)
    return defaults.page_not_found(request, exception, template_name="portal/404.html")


def server_error(request):
    if _is_api(request):
        return errors.json_server_error(request)
    return defaults.server_error(request, template_name="portal/500.html")
