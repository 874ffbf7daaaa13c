"""OpenAPI post-processing: document the error answers every operation can give.

drf-spectacular documents success bodies; clients (and schema-conformance checks) also need to
know that a 400, 401, 403, 404 or 429 carries {"code", "detail"}. Those follow from the operation
itself (a body or query parameters, security, a path id, throttles). The domain errors a view may
raise (409 conflicts, 402, 502, 503) only the view knows: it lists them with `errors(...)` in its
`extend_schema(responses=...)`, and the hook gives every error status the Error body.
"""

from collections import defaultdict

from drf_spectacular.utils import OpenApiResponse

from dumont.exceptions import DumontError

ERROR_COMPONENT = {
    "type": "object",
    "required": ["code", "detail"],
    "properties": {
        "code": {"type": "string", "description": "Stable, machine-readable reason."},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "errors": {
            "type": "object",
            "description": "Validation errors by field: [{code, message}].",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "retry_after_seconds": {"type": "integer", "description": "On 429 only."},
    },
}
DESCRIPTIONS = {
    "400": "Invalid input",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "Authenticated, but the role does not allow this",
    "404": "No such object in your organisation",
    "402": "Not enough credit",
    "409": "Conflicts with the current state",
    "413": "The request body is too large",
    "429": "Too many requests; retry after Retry-After seconds",
    "502": "An outside provider refused or failed",
    "503": "An outside provider is not answering; try again later",
}


def errors(*domain_errors: type[DumontError]) -> dict[int, OpenApiResponse]:
    """`extend_schema(responses=...)` entries for the domain errors a view may raise."""
    codes_by_status: dict[int, list[str]] = defaultdict(list)
    for error in domain_errors:
        codes_by_status[error.status_code].append(f"`{error.code}`")
    return {
        status: OpenApiResponse(
            description=f"{DESCRIPTIONS.get(str(status), 'Error')}: {', '.join(codes)}"
        )
        for status, codes in codes_by_status.items()
    }


def _throttled_operations(generator) -> set[tuple[str, str]]:
    """(path, method) of every endpoint whose view has throttles, read from the views."""
    return {
        (path, method.lower())
        for path, _, method, view in generator.endpoints
        if getattr(view.cls, "throttle_classes", None)
    }


def _error_statuses(path: str, method: str, operation: dict, is_throttled: bool) -> list[str]:
    statuses = []
    # A query parameter, or a path parameter that is not a plain id (a GPU name), can be invalid.
    has_checked_parameter = any(
        parameter["in"] == "query"
        or (parameter["in"] == "path" and parameter.get("schema", {}).get("type") != "integer")
        for parameter in operation.get("parameters", [])
    )
    if "requestBody" in operation or method in ("post", "put", "patch") or has_checked_parameter:
        statuses.append("400")
    if "requestBody" in operation:
        statuses.append("413")  # DATA_UPLOAD_MAX_MEMORY_SIZE (dumont/limits.py)
    if any(scheme for scheme in operation.get("security", []) if scheme):
        statuses += ["401", "403"]
    if "{" in path:
        statuses.append("404")
    if is_throttled:
        statuses.append("429")
    return statuses


def add_error_responses(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: the Error component and its responses on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    reference = {"$ref": "#/components/schemas/Error"}
    throttled = _throttled_operations(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            is_throttled = (path, method) in throttled
            for status in _error_statuses(path, method, operation, is_throttled):
                responses.setdefault(status, {"description": DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status >= "400" and "content" not in response:
                    response["content"] = {"application/json": {"schema": reference}}
    return result
