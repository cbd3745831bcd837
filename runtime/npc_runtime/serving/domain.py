"""Constructors of the engine's request types, in one place, so `translate` stays independent of where
the engine defines them."""

from __future__ import annotations

from typing import Any


def session_limits(*, max_new_tokens: int, max_context: int, idle_timeout_s: float) -> Any:
    from npc_runtime.config import SessionLimits

    # zero = "the default": leave the field out so the engine's default applies
    given = {"max_new_tokens": max_new_tokens, "max_context": max_context, "idle_timeout_s": idle_timeout_s}
    if not any(given.values()):
        return None
    return SessionLimits(**{k: v for k, v in given.items() if v}).validate()


def allowed_constraint(sequences: tuple[str, ...]) -> Any:
    from npc_runtime.decode.constraints import ConstraintSpec

    return ConstraintSpec.one_of(sequences)


def json_schema_constraint(schema: dict) -> Any:
    from npc_runtime.decode.constraints import ConstraintSpec

    return ConstraintSpec.json(schema)

