"""Pagination of every list: ?limit= and ?offset=, and a 400 for values that are not counts.

DRF's LimitOffsetPagination quietly falls back to the default page on `?limit=abc`; a client with
a typo would page through the wrong window without knowing, so a bad value is a 400 here.
"""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 500

    def _count_parameter(self, request, name: str, default: int | None) -> int | None:
        text = request.query_params.get(name)
        if text is None or text == "":
            return default
        if not text.isascii() or not text.isdigit():
            raise ValidationError({name: ["Must be a whole number, 0 or more."]}, code="invalid")
        return int(text)

    def get_limit(self, request) -> int | None:
        limit = self._count_parameter(request, self.limit_query_param, self.default_limit)
        if limit is None:
            return None
        if limit == 0:
            return self.default_limit
        if limit > self.max_limit:
            raise ValidationError(
                {self.limit_query_param: [f"At most {self.max_limit}."]}, code="max_value"
            )
        return limit

    def get_offset(self, request) -> int:
        return self._count_parameter(request, self.offset_query_param, 0)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 0
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["maximum"] = self.max_limit
        return parameters
