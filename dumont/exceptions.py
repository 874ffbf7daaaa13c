"""Base of every app's domain errors (Django- and DRF-free, so any layer may raise them)."""


class DumontError(Exception):
    """Base of every app's domain errors; the API handler turns it into JSON with `code`."""

    code = "error"
    status_code = 400
    default_detail = "The request could not be completed."

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    def extra(self) -> dict:
        """More fields for the error body (e.g. alternatives), beside code and detail."""
        return {}
