"""One typed error tree and one table that maps each error to HTTP status, OpenAI type and code.

    HearthError                      500 server_error / internal_error
    ├── InvalidRequest               400 invalid_request_error / invalid_request
    │   ├── ContextLengthExceeded    400 invalid_request_error / context_length_exceeded
    │   ├── UnsupportedParameter     400 invalid_request_error / unsupported_parameter
    │   ├── SqlRejected              400 invalid_request_error / sql_rejected
    │   └── QueryTooCostly           400 invalid_request_error / query_too_costly
    ├── AuthenticationFailed         401 authentication_error / invalid_api_key
    ├── NotFound                     404 invalid_request_error / not_found
    │   ├── ModelNotFound            404 invalid_request_error / model_not_found
    │   ├── DatabaseNotFound         404 invalid_request_error / database_not_found
    │   └── ReviewItemNotFound       404 invalid_request_error / review_item_not_found
    ├── Overloaded                   429 rate_limit_error / queue_full        (Retry-After)
    │   └── RateLimited              429 rate_limit_error / rate_limit_exceeded (Retry-After)
    ├── ServiceUnavailable           503 service_unavailable / service_unavailable
    │   ├── ModelNotReady            503 service_unavailable / model_not_ready
    │   ├── DatabaseUnavailable      503 service_unavailable / database_unavailable
    │   ├── ShuttingDown             503 service_unavailable / shutting_down   (Retry-After)
    │   └── AuditLogFailed           503 service_unavailable / audit_log_unavailable
    ├── QueryTimeout                 504 timeout_error / query_timeout
    └── EngineFailure                500 server_error / engine_failure

Code raises these; nothing parses exception text. `describe()` is the only place that turns an
error into (status, type, code).
"""

from __future__ import annotations

from dataclasses import dataclass


class HearthError(Exception):
    """Base of every error Hearth reports to a client."""

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        # Seconds a client should wait before retrying (sent as the Retry-After header).
        self.retry_after = retry_after


class InvalidRequest(HearthError):
    """The request is well-formed JSON but asks for something invalid."""


class ContextLengthExceeded(InvalidRequest):
    """Prompt tokens plus requested completion tokens exceed the model's context."""


class UnsupportedParameter(InvalidRequest):
    """A valid OpenAI parameter that this server does not implement."""


class SqlRejected(InvalidRequest):
    """The SQL validator refused a statement (used where a rejection must be an error)."""


class QueryTooCostly(InvalidRequest):
    """The database's planner estimates a query above the database's max_query_cost (server/sql/cost.py)."""

    def __init__(self, message: str, *, cost: float, param: str | None = None):
        super().__init__(message, param=param)
        self.cost = cost


class AuthenticationFailed(HearthError):
    """Missing or wrong API key."""


class NotFound(HearthError):
    """A named resource does not exist."""


class ModelNotFound(NotFound):
    """The `model` names no configured model."""


class DatabaseNotFound(NotFound):
    """The `database` names no configured database."""


class ReviewItemNotFound(NotFound):
    """The blind-review store holds no item with this id."""


class Overloaded(HearthError):
    """The request queue is full; the client should retry later."""


class RateLimited(Overloaded):
    """The API key is over one of its limits (server/limits.py); Retry-After says when it is not."""


class ServiceUnavailable(HearthError):
    """A dependency is not ready or not reachable."""


class ModelNotReady(ServiceUnavailable):
    """The model is still loading."""


class DatabaseUnavailable(ServiceUnavailable):
    """The customer database cannot be reached."""


class ShuttingDown(ServiceUnavailable):
    """The server is draining after SIGTERM/SIGINT: in-flight requests finish, new ones go elsewhere."""


class AuditLogFailed(ServiceUnavailable):
    """The audit log could not be written, so the answer is withheld (server/audit.py)."""


class QueryTimeout(HearthError):
    """The database query ran past its time limit and was cancelled."""


class EngineFailure(HearthError):
    """The inference engine failed while serving a request."""


@dataclass(frozen=True)
class ErrorKind:
    status: int
    type: str
    code: str


# The one table. Lookup walks the class's MRO, so a subclass without a row takes its parent's.
ERROR_TABLE: dict[type[HearthError], ErrorKind] = {
    HearthError: ErrorKind(500, "server_error", "internal_error"),
    InvalidRequest: ErrorKind(400, "invalid_request_error", "invalid_request"),
    ContextLengthExceeded: ErrorKind(400, "invalid_request_error", "context_length_exceeded"),
    UnsupportedParameter: ErrorKind(400, "invalid_request_error", "unsupported_parameter"),
    SqlRejected: ErrorKind(400, "invalid_request_error", "sql_rejected"),
    QueryTooCostly: ErrorKind(400, "invalid_request_error", "query_too_costly"),
    AuthenticationFailed: ErrorKind(401, "authentication_error", "invalid_api_key"),
    NotFound: ErrorKind(404, "invalid_request_error", "not_found"),
    ModelNotFound: ErrorKind(404, "invalid_request_error", "model_not_found"),
    DatabaseNotFound: ErrorKind(404, "invalid_request_error", "database_not_found"),
    ReviewItemNotFound: ErrorKind(404, "invalid_request_error", "review_item_not_found"),
    Overloaded: ErrorKind(429, "rate_limit_error", "queue_full"),
    RateLimited: ErrorKind(429, "rate_limit_error", "rate_limit_exceeded"),
    ServiceUnavailable: ErrorKind(503, "service_unavailable", "service_unavailable"),
    ModelNotReady: ErrorKind(503, "service_unavailable", "model_not_ready"),
    DatabaseUnavailable: ErrorKind(503, "service_unavailable", "database_unavailable"),
    ShuttingDown: ErrorKind(503, "service_unavailable", "shutting_down"),
    AuditLogFailed: ErrorKind(503, "service_unavailable", "audit_log_unavailable"),
    QueryTimeout: ErrorKind(504, "timeout_error", "query_timeout"),
    EngineFailure: ErrorKind(500, "server_error", "engine_failure"),
}


def describe(error: HearthError) -> ErrorKind:
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    raise TypeError(f"{type(error).__name__} is not a HearthError")


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
