"""The ONE mapping from the runtime's exception tree to gRPC status codes and HTTP statuses.

Every servicer and the HTTP API go through `status_for(exc)`. A `NpcRuntimeError` keeps its message
(it says what to fix); anything else is a bug: its traceback is logged and the client gets INTERNAL
with a generic message, the server keeps running. Client data is parsed inside `client_input(field)`, so
what a parser raises on bad input (RecursionError, UnicodeError, ValueError) is the client's
INVALID_ARGUMENT naming the field, never mistaken for a server bug.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from npc_runtime import errors

log = logging.getLogger("npc_runtime.serving")


@dataclass(frozen=True)
class Status:
    grpc_code: grpc.StatusCode
    http_status: int
    # OpenAI-style error "type" for the HTTP API
    http_type: str
    message: str


# exception class -> (gRPC code, HTTP status, OpenAI error type). Looked up along the MRO, so a
# subclass added to errors.py later maps like its parent until it gets its own row.
_TABLE: dict[type[BaseException], tuple[grpc.StatusCode, int, str]] = {
    errors.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request_error"),
    errors.NotFound: (grpc.StatusCode.NOT_FOUND, 404, "not_found_error"),
    errors.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, 409, "conflict_error"),
    errors.ResourceExhausted: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limit_error"),
    errors.RequestTooLarge: (grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "invalid_request_error"),
    errors.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, 409, "invalid_request_error"),
    errors.ModelPackageError: (grpc.StatusCode.FAILED_PRECONDITION, 409, "invalid_request_error"),
    errors.Cancelled: (grpc.StatusCode.CANCELLED, 499, "cancelled"),
    errors.DeadlineExceeded: (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout_error"),
    errors.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_error"),
    errors.Unavailable: (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"),
    errors.InternalError: (grpc.StatusCode.INTERNAL, 500, "server_error"),
    errors.NpcRuntimeError: (grpc.StatusCode.INTERNAL, 500, "server_error"),
}

_INTERNAL = (grpc.StatusCode.INTERNAL, 500, "server_error")
INTERNAL_MESSAGE = "internal error (a bug in npc-runtime: please report it with the server log)"
# A status message can quote client data (an unknown id, a bad value): it is cut so the status always fits
# gRPC's trailing metadata (8 KiB by default; a larger one reaches the client as UNKNOWN / INTERNAL).
MAX_MESSAGE_CHARS = 1_000

# Codes a client may see from the NpcRuntime service (documented in runtime.proto).
DOCUMENTED_CODES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
})


def status_for(exc: BaseException, *, where: str = "") -> Status:
    """Status for an exception. Unexpected ones are logged with their traceback (they are bugs)."""
    for cls in type(exc).__mro__:
        row = _TABLE.get(cls)
        if row is not None:
            code, http_status, http_type = row
            message = _cut(str(exc) or cls.__name__)
            if code is grpc.StatusCode.INTERNAL:
                log.error("internal error in %s: %s", where or "request", message, exc_info=exc)
            return Status(code, http_status, http_type, message)
    if isinstance(exc, (TimeoutError,)):
        return Status(grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout_error", "the deadline passed")
    log.error("unexpected exception in %s", where or "request", exc_info=exc)
    code, http_status, http_type = _INTERNAL
    return Status(code, http_status, http_type, INTERNAL_MESSAGE)


def _cut(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS - 20] + f"... ({len(message)} chars)"


@contextmanager
def client_input(field: str) -> Iterator[None]:
    """Parse client data inside this block: a RecursionError (too deep), UnicodeError (not valid text) or
    ValueError (malformed) becomes InvalidArgument naming `field`, raised from the parser's error."""
    try:
        yield
    except RecursionError as exc:
        raise errors.InvalidArgument(f"{field} is nested too deeply") from exc
    except UnicodeError as exc:
        raise errors.InvalidArgument(f"{field} is not valid Unicode text ({getattr(exc, 'reason', exc)})") from exc
    except ValueError as exc:
        raise errors.InvalidArgument(f"{field} is malformed: {_cut(str(exc))}") from exc


def grpc_code_number(code: grpc.StatusCode) -> int:
    """The numeric code (5 for NOT_FOUND...) used in TickResult.error_code."""
    return int(code.value[0])
