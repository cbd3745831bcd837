"""One exception tree for the whole runtime.

Lower layers (ONNX Runtime, tokenizers, SQLite, cloud SDKs) raise their own errors; each is translated
into one of these at the boundary of the module that calls it (`raise ... from exc`, the cause is kept).
`serving/` maps each class to one gRPC status / HTTP code in exactly one place.
"""

from __future__ import annotations


class NpcRuntimeError(Exception):
    """Base of every error the runtime raises on purpose. The message says what to fix."""


class InvalidArgument(NpcRuntimeError):
    """A request field is malformed or out of range (gRPC INVALID_ARGUMENT)."""


class NotFound(NpcRuntimeError):
    """An unknown session, model or NPC (gRPC NOT_FOUND)."""


class AlreadyExists(NpcRuntimeError):
    """A session / NPC id that is already taken (gRPC ALREADY_EXISTS)."""


class ResourceExhausted(NpcRuntimeError):
    """Too many sessions, too long a prompt, context full, budget spent (gRPC RESOURCE_EXHAUSTED)."""


class RequestTooLarge(ResourceExhausted):
    """A request over a size limit: body bytes, message count, prompt characters, or a prompt longer than the
    model's context (gRPC RESOURCE_EXHAUSTED, HTTP 413). The message names the limit."""


class FailedPrecondition(NpcRuntimeError):
    """The request is valid but not in this state, e.g. ticking a finished or evicted session
    (gRPC FAILED_PRECONDITION)."""


class Cancelled(NpcRuntimeError):
    """The work was cancelled by the client (gRPC CANCELLED)."""


class DeadlineExceeded(NpcRuntimeError):
    """A deadline passed before the work finished (gRPC DEADLINE_EXCEEDED)."""


class Unauthenticated(NpcRuntimeError):
    """Missing or wrong bearer token (gRPC UNAUTHENTICATED)."""


class Unavailable(NpcRuntimeError):
    """A dependency is down (cloud endpoint, circuit open), retry later (gRPC UNAVAILABLE)."""


class ModelPackageError(NpcRuntimeError):
    """A model package is missing, corrupt (hash mismatch) or does not follow docs/model-package.md
    (gRPC FAILED_PRECONDITION when it surfaces in a request; a clear startup error otherwise)."""


class InternalError(NpcRuntimeError):
    """A bug or an unexpected failure in a lower layer (gRPC INTERNAL)."""
