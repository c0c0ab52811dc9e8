"""One error hierarchy with stable codes; api.errors turns it into HTTP in one place."""

from __future__ import annotations


class ClientstatsError(Exception):
    """Base of every error this product reports to a person or a client."""

    status_code = 500
    reason = "Internal Server Error"
    retry_after: int | None = None  # seconds after which a retry may succeed (Retry-After)

    def __init__(
        self,
        message: str,
        *,
        errors: dict[str, list[str]] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.links = links or []


class NotFound(ClientstatsError):
    """A resource that does not exist or is outside the caller's scope."""

    status_code = 404
    reason = "Record Not Found"


class ValidationFailed(ClientstatsError):
    """Submitted data that cannot be processed; `errors` names the fields."""

    status_code = 422
    reason = "Cannot Process Submitted Data"


class Unauthenticated(ClientstatsError):
    """Missing or wrong credentials."""

    status_code = 401
    reason = "Unauthorized"


class Forbidden(ClientstatsError):
    """Authenticated, but not allowed."""

    status_code = 403
    reason = "Forbidden"


class Conflict(ClientstatsError):
    """The request contradicts what is stored (an idempotency key reused for another body)."""

    status_code = 409
    reason = "Conflict"


class UnsupportedMediaType(ClientstatsError):
    """A request body of a content type the endpoint does not take."""

    status_code = 415
    reason = "Unsupported Media Type"


class PayloadTooLarge(ClientstatsError):
    """A request body over the endpoint's limit."""

    status_code = 413
    reason = "Payload Too Large"


class ServiceUnavailable(ClientstatsError):
    """A dependency (the database) cannot be reached right now; try again."""

    status_code = 503
    reason = "Service Unavailable"


class Overloaded(ServiceUnavailable):
    """More work of one kind at once than the service takes on (password checks); retry soon."""

    retry_after = 1


class SchemaOutdated(ClientstatsError):
    """The database schema is older than this version of the code."""

    status_code = 503
    reason = "Service Unavailable"


class ConfigurationError(ClientstatsError):
    """A setting is missing, malformed or unsafe for production."""


class BadRequest(ClientstatsError):
    """A request that cannot even be read (e.g. a body that is not JSON)."""

    status_code = 400
    reason = "Bad Request"
