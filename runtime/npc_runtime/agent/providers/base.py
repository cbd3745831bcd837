"""The escalation provider interface: one structured-decision request in, raw text and usage out.

Providers raise only runtime errors: `Unavailable` (connection failed, 429, 5xx: retried),
`DeadlineExceeded` (the attempt timed out: retried while the deadline allows), `Unauthenticated` /
`InvalidArgument` (a bad key or request: not retried).
"""

from __future__ import annotations

from collections.abc import Iterator
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Mapping, Protocol, Sequence

from npc_runtime.agent.dialogue import DialoguePrompt
from npc_runtime.errors import DeadlineExceeded, InvalidArgument, Unauthenticated, Unavailable


@dataclass(frozen=True)
class EscalationRequest:
    npc_id: str
    system: str                          # instructions: the reply format, the untrusted-input rule
    user: str                            # JSON with the NPC, its state, allowed actions, memories, player_said
    allowed_actions: tuple[str, ...]
    max_output_tokens: int
    trigger: str                         # low_confidence | low_margin | novelty | story_critical
    local_prompt: DialoguePrompt | None = None   # for the `local` provider (same chat format as the small model)
    local_hint: Sequence[str] = field(default_factory=tuple)  # allowed actions ordered by the policy, best first
    observation: Mapping[str, float] = field(default_factory=dict)  # the policy's input (the `rules` provider reads it)


@dataclass(frozen=True)
class ProviderReply:
    text: str
    input_tokens: int | None      # as the endpoint reported them; None: missing or not a count. Untrusted:
    output_tokens: int | None     # the escalation manager settles the budget through `budget.sane_usage`
    model: str


def usage_count(value: object) -> int | None:
    """A token count from an endpoint's usage block, or None when it is missing or not a whole number
    (a string, NaN, 1.5, a boolean...). Range checks are `budget.sane_usage`'s."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


class EscalationProvider(Protocol):
    name: str    # "openai" | "anthropic" | "local"
    model: str

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply: ...


@contextmanager
def sdk_errors(provider: str, sdk: ModuleType, base_error: type[Exception], *, timeout_s: float) -> Iterator[None]:
    """Translate the exceptions of the `openai` / `anthropic` SDKs (same class names in both) into the
    runtime errors above; `base_error` is the SDK's root class (`OpenAIError`, `AnthropicError`)."""
    try:
        yield
    except sdk.APITimeoutError as exc:
        raise DeadlineExceeded(f"{provider}: no answer within {timeout_s * 1000:.0f} ms") from exc
    except sdk.APIConnectionError as exc:
        raise Unavailable(f"{provider}: cannot reach the endpoint ({exc})") from exc
    except sdk.AuthenticationError as exc:
        raise Unauthenticated(f"{provider}: the endpoint refused the key ({exc.status_code})") from exc
    except sdk.APIStatusError as exc:
        if exc.status_code == 429 or exc.status_code >= 500:
            raise Unavailable(f"{provider}: endpoint returned {exc.status_code}") from exc
        raise InvalidArgument(f"{provider}: endpoint rejected the request ({exc.status_code}): {exc.message}") from exc
    except base_error as exc:
        raise Unavailable(f"{provider}: {exc}") from exc
