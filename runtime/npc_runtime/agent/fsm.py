"""Finite-state machines that bound what an NPC may do.

`FsmDefinition` is the validated, immutable definition (see `fsm_loader.parse_fsm`); `FsmInstance` is one
NPC's position in it. `FsmInstance.tick(ctx, now_s)` takes at most one transition (the first true guard of
the current state, in file order), then checks reflexes; it costs a few microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from npc_runtime.agent.expressions import Guard, GuardContext


@dataclass(frozen=True)
class Transition:
    target: str
    guard: Guard
    line: int = 0


@dataclass(frozen=True)
class StateSpec:
    name: str
    allowed: tuple[str, ...]
    default: str
    transitions: tuple[Transition, ...] = ()


@dataclass(frozen=True)
class Reflex:
    """In one of `states`, when `guard` holds: do `action` at once, no model."""

    states: frozenset[str]
    guard: Guard
    action: str
    arguments: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class FsmDefinition:
    name: str
    initial: str
    states: Mapping[str, StateSpec]
    reflexes: tuple[Reflex, ...] = ()
    source: str = "<fsm>"
    # the YAML it was parsed from (kept so a registered NPC can be persisted and rebuilt after a restart)
    text: str = field(default="", repr=False, compare=False)

    def allowed(self, state: str) -> tuple[str, ...]:
        return self.states[state].allowed


@dataclass(slots=True)
class FsmTick:
    state: str
    previous: str
    reflex: Reflex | None

    @property
    def changed(self) -> bool:
        return self.state != self.previous


class FsmInstance:
    """One NPC's current state; game time in seconds."""

    __slots__ = ("definition", "state", "entered_s")

    def __init__(self, definition: FsmDefinition, *, now_s: float = 0.0):
        self.definition = definition
        self.state = definition.initial
        self.entered_s = now_s

    @property
    def spec(self) -> StateSpec:
        return self.definition.states[self.state]

    def tick(self, ctx: GuardContext, now_s: float) -> FsmTick:
        previous = self.state
        ctx.time_in_state = now_s - self.entered_s
        for transition in self.definition.states[previous].transitions:
            if transition.guard(ctx):
                self.state = transition.target
                self.entered_s = now_s
                ctx.time_in_state = 0.0
                break
        reflex = None
        for candidate in self.definition.reflexes:
            if self.state in candidate.states and candidate.guard(ctx):
                reflex = candidate
                break
        return FsmTick(state=self.state, previous=previous, reflex=reflex)
