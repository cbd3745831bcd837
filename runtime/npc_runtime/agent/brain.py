"""The agent loop for every registered NPC: perceive -> plan -> act -> reflect.

`AgentRuntime` owns the shared parts (memory store, policy model, dialogue model, escalation manager,
counters) and a `NpcBrain` per registered NPC (persona, FSM instance, reflection accumulator).
`AgentRuntime.step(npc_id, percept, events, deadline_ms=...)` is synchronous and thread-safe; one NPC's
steps are serialised by its own lock, different NPCs run in parallel. `step_stream` is the same step
with its answer delivered as it is made: the final action first, then the spoken line as text deltas
(streamed from the engine when the local model speaks), then the whole decision. `recall` ranks an NPC's
memories by the retrieval score without touching them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from npc_runtime.agent.actions import ACTIONS
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.dialogue import (MOOD_BY_STATE, DialogueModel, DialoguePrompt, DialogueReply, SentenceDeltas,
                                        TemplateDialogue, parse_reply, sanitize_player_text, split_sentences)
from npc_runtime.agent.escalation import SYSTEM_PROMPT, EscalationManager, PendingEscalation, build_request_payload
from npc_runtime.agent.expressions import GuardContext
from npc_runtime.agent.fsm import FsmDefinition, FsmInstance
from npc_runtime.agent.importance import HeuristicImportance, ImportanceScorer
from npc_runtime.agent.memory import Memory, MemoryStore
from npc_runtime.agent import save_game
from npc_runtime.agent.npc_store import NpcStore, StoredNpc
from npc_runtime.agent.planner import (LocalDecision, decide_from_reply, decide_quiet, decide_with_dialogue,
                                       dialogue_failed, order_allowed)
from npc_runtime.agent.policy_model import Policy, UniformPolicy
from npc_runtime.agent.providers.base import EscalationRequest
from npc_runtime.agent.reflection import reflect
from npc_runtime.agent.types import AgentDecision, Event, Percept, Persona
from npc_runtime.agent.versions import PolicyVersion, PolicyVersions
from npc_runtime.errors import (AlreadyExists, InternalError, InvalidArgument, NotFound, NpcRuntimeError,
                                ResourceExhausted)

ROLE_TITLES: Mapping[str, str] = {
    "guard": "the village guard", "merchant": "the market merchant", "villager": "a villager",
}
# persona role -> policy features it implies (unless the observation sets them)
ROLE_FEATURES: Mapping[str, Mapping[str, float]] = {
    "guard": {"npc_is_guard": 1.0}, "merchant": {"npc_is_merchant": 1.0}, "villager": {"npc_is_villager": 1.0},
}
MAX_EVENTS_PER_STEP = 32
MAX_NPC_ID = 128
MAX_RECALL = 1000
# a decision the escalation provider made is remembered (kind "decision") with this importance
DECISION_IMPORTANCE = 5.0


class StepOutput:
    """Where `step_stream` sends its answer: `on_action(decision)` once, then `on_delta(text, sentence_end)`.

    The action goes out only once it is final (escalation settled, allowlist checked), so it is never
    retracted; `latency_ms` of the partial decision is the time to action."""

    def __init__(self, on_action: Callable[[AgentDecision], None], on_delta: Callable[[str, bool], None],
                 started: float):
        self._on_action, self._on_delta, self._started = on_action, on_delta, started
        self.action_sent = False

    def action(self, decision: AgentDecision) -> None:
        _check_allowed(decision)
        decision.latency_ms = (time.monotonic() - self._started) * 1000.0
        self.action_sent = True
        self._on_action(decision)

    def delta(self, text: str, sentence_end: bool) -> None:
        self._on_delta(text, sentence_end)


def _check_allowed(d: AgentDecision) -> None:
    if d.action not in d.allowed_actions or d.action not in ACTIONS:   # the safety invariant; never expected
        raise InternalError(f"bug: {d.action!r} chosen outside the allowed actions {d.allowed_actions}")


@dataclass
class NpcBrain:
    npc_id: str
    persona: Persona
    fsm: FsmInstance
    lock: threading.Lock = field(default_factory=threading.Lock)
    importance_since_reflection: float = 0.0
    last_reflection_id: int = 0
    persisted_state: str = ""   # the FSM state last written to the NPC store

    @property
    def persona_text(self) -> str:
        title = ROLE_TITLES.get(self.persona.role, f"the {self.persona.role}" if self.persona.role else "a villager")
        traits = ", ".join(self.persona.traits[:3])
        text = f"You are {self.persona.name}, {title}."
        return f"{text} Traits: {traits}." if traits else text


class Pending(NamedTuple):
    """An escalation in flight, with what the distillation record needs once it settles."""
    trigger: str
    handle: PendingEscalation
    example: Mapping[str, Any]      # observation, local proposal, policy version


@dataclass
class VersionStats:
    """Per policy version (metrics `npc_agent_version_*`, the demo's days)."""
    decisions: int = 0
    escalations: int = 0
    rejected_actions: int = 0
    cost_usd: float = 0.0


@dataclass
class AgentStats:
    decisions: int = 0
    by_source: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    rejected_actions: int = 0
    fallbacks: int = 0
    escalations: int = 0            # provider actually called
    escalation_failures: int = 0    # timeout / error / rejected
    escalations_denied: int = 0     # budget or circuit refused
    memories_written: int = 0
    reflections: int = 0
    local_tokens: int = 0
    step_ms: deque = field(default_factory=lambda: deque(maxlen=100_000))
    versions: dict = field(default_factory=dict)     # policy version name -> VersionStats


class AgentRuntime:
    def __init__(self, *, config: AgentConfig = AgentConfig(), memory: MemoryStore | None = None,
                 policy: Policy | None = None, dialogue: DialogueModel | None = None,
                 escalation: EscalationManager | None = None, importance: ImportanceScorer | None = None,
                 npc_store: "NpcStore | None" = None, policies: PolicyVersions | None = None,
                 records: Any = None):
        self.config = config
        self.memory = memory or MemoryStore(config.memory_db, weights=config.retrieval)
        # the policy versions NPCs are routed to (one, "base", unless several are configured)
        self.policies = policies or PolicyVersions.single(policy or UniformPolicy())
        self.dialogue: DialogueModel = dialogue or TemplateDialogue()
        self.escalation = escalation
        self.importance = importance or HeuristicImportance()
        self.stats = AgentStats()
        self._npcs: dict[str, NpcBrain] = {}
        self._lock = threading.Lock()
        # registered NPCs persisted here (None: they live as long as the process)
        self.npc_store = npc_store
        # where each settled escalation's training example goes (`.append(dict)`; None: not recorded)
        self.records = records

    @property
    def policy(self) -> Policy:
        """The default version's policy."""
        return self.policies.default.policy

    # ---- registry -------------------------------------------------------------------------------------
    def register(self, npc_id: str, persona: Persona, fsm: FsmDefinition, *,
                 memories: Iterable[tuple[str, float]] = (), replace: bool = False,
                 game_time_s: float = 0.0) -> NpcBrain:
        if not npc_id or len(npc_id) > MAX_NPC_ID:
            raise InvalidArgument(f"npc_id must be 1-{MAX_NPC_ID} characters")
        brain = NpcBrain(npc_id=npc_id, persona=persona, fsm=FsmInstance(fsm, now_s=game_time_s))
        with self._lock:
            if npc_id in self._npcs and not replace:
                raise AlreadyExists(f"NPC {npc_id!r} is already registered (set replace=true to re-register it)")
            if npc_id not in self._npcs and len(self._npcs) >= self.config.max_npcs:
                raise ResourceExhausted(f"too many NPCs ({self.config.max_npcs}); unregister some first")
            self._npcs[npc_id] = brain
        if self.npc_store is not None:
            self.npc_store.save(npc_id, persona, fsm, state=brain.fsm.state, entered_s=game_time_s)
            brain.persisted_state = brain.fsm.state
        for text, importance in memories:
            score = importance if importance > 0 else self.importance.score(text)
            self.memory.add(npc_id, text, kind="seed", importance=min(10.0, max(1.0, score)), game_time_s=game_time_s)
        return brain

    def unregister(self, npc_id: str, *, forget: bool = False) -> None:
        with self._lock:
            held = self._npcs.pop(npc_id, None)
        if held is None and (self.npc_store is None or not self.npc_store.exists(npc_id)):
            raise NotFound(f"no NPC registered as {npc_id!r}")
        if self.npc_store is not None:
            self.npc_store.delete(npc_id)
        if forget:
            self.memory.forget(npc_id)

    # ---- save-games (agent/save_game.py) ---------------------------------------------------------------
    def save_npc(self, npc_id: str) -> save_game.NpcSaveState:
        """The NPC (persona, FSM and its state, every memory) as it is now; it stays registered."""
        brain = self.get(npc_id)
        with brain.lock:
            return save_game.capture(npc_id, brain.persona, brain.fsm.definition, state=brain.fsm.state,
                                     entered_s=brain.fsm.entered_s, memory=self.memory)

    def load_npc(self, save: save_game.NpcSaveState, *, npc_id: str = "", replace: bool = False) -> NpcBrain:
        """Registers the saved NPC (under `npc_id`, default its saved id) in its saved FSM state, with its saved
        memories replacing any stored under that id."""
        fsm = save_game.rebuild_fsm(save)
        npc_id = npc_id or save.npc_id
        if save.state not in fsm.states:
            raise InvalidArgument(f"the NPC save's state {save.state!r} is not a state of its FSM")
        brain = self.register(npc_id, save.persona, fsm, replace=replace, game_time_s=save.entered_s)
        with brain.lock:
            brain.fsm.state, brain.fsm.entered_s = save.state, save.entered_s
            self._persist_state(brain)
        self.memory.forget(npc_id)
        self.memory.import_memories(npc_id, save.memories)
        return brain

    def restore_npcs(self) -> tuple[int, list[str]]:
        """Re-register the NPCs of `npc_store` (after a restart), each in the FSM state it was in.
        Returns how many came back and one line per NPC that could not."""
        if self.npc_store is None:
            return 0, []
        stored, problems = self.npc_store.load_all()
        with self._lock:
            for npc in stored:
                self._npcs[npc.npc_id] = _brain_of(npc)
        return len(stored), problems

    def _persist_state(self, brain: NpcBrain) -> None:
        """Write the FSM state when it changed (rare next to ticks: one small UPDATE). Called under
        `brain.lock`, right after the FSM ticked, so writes of one NPC happen in the order of its steps."""
        if self.npc_store is not None and brain.fsm.state != brain.persisted_state:
            self.npc_store.save_state(brain.npc_id, brain.fsm.state, brain.fsm.entered_s)
            brain.persisted_state = brain.fsm.state

    def get(self, npc_id: str) -> NpcBrain:
        brain = self._npcs.get(npc_id)
        if brain is None:
            brain = self._load_stored(npc_id)
        if brain is None:
            raise NotFound(f"no NPC registered as {npc_id!r} (call RegisterNpc first)")
        return brain

    def _load_stored(self, npc_id: str) -> NpcBrain | None:
        """An NPC this process does not hold but the NPC store does: registered through another replica of a
        fleet sharing the database (or before this replica took over). Loaded once, then held here."""
        if self.npc_store is None or not npc_id or len(npc_id) > MAX_NPC_ID:
            return None
        stored = self.npc_store.load(npc_id)
        if stored is None:
            return None
        with self._lock:
            return self._npcs.setdefault(npc_id, _brain_of(stored))

    def __len__(self) -> int:
        return len(self._npcs)

    # ---- the loop -------------------------------------------------------------------------------------
    def step(self, npc_id: str, percept: Percept, events: Sequence[Event] = (), *,
             deadline_ms: float = 0.0) -> AgentDecision:
        brain = self._check_step(npc_id, events, deadline_ms)
        started = time.monotonic()
        deadline = started + (deadline_ms or self.config.default_deadline_ms) / 1000.0
        with brain.lock:
            decision = self._step_locked(brain, percept, events, deadline)
            self._persist_state(brain)
        decision.latency_ms = (time.monotonic() - started) * 1000.0
        self._count(decision)
        return decision

    def step_stream(self, npc_id: str, percept: Percept, events: Sequence[Event] = (), *,
                    deadline_ms: float = 0.0, on_action: Callable[[AgentDecision], None],
                    on_delta: Callable[[str, bool], None], cancelled: threading.Event | None = None) -> AgentDecision:
        """`step`, answered as it is made: `on_action` once with the final action, then `on_delta` for each
        piece of the line (sentence ends marked, the last piece always marked), then the whole decision is
        returned (its dialogue = the pieces joined). Bad input raises before `on_action`.

        When the local model speaks, the line streams from the engine as it decodes; the deadline bounds the
        time to the action (tag decoded, escalation settled), the line after it may run to
        `max_deadline_ms`. Otherwise (FSM reflex, quiet policy step, cloud decision, a model that cannot
        stream) the action is sent when the decision is made and the line follows cut into sentences.
        `cancelled` set (the client went away) stops the decoding; the step itself still counts."""
        brain = self._check_step(npc_id, events, deadline_ms)
        started = time.monotonic()
        deadline = started + (deadline_ms or self.config.default_deadline_ms) / 1000.0
        out = StepOutput(on_action, on_delta, started)
        with brain.lock:
            decision = self._step_locked(brain, percept, events, deadline, out=out, cancelled=cancelled)
            self._persist_state(brain)
        if not out.action_sent:
            out.action(decision)
            for sentence in split_sentences(decision.dialogue):
                out.delta(sentence, True)
        decision.latency_ms = (time.monotonic() - started) * 1000.0
        self._count(decision)
        return decision

    def _check_step(self, npc_id: str, events: Sequence[Event], deadline_ms: float) -> NpcBrain:
        if deadline_ms < 0 or deadline_ms > self.config.max_deadline_ms:
            raise InvalidArgument(f"deadline_ms must be 0-{self.config.max_deadline_ms:.0f}, got {deadline_ms}")
        if len(events) > MAX_EVENTS_PER_STEP:
            raise InvalidArgument(f"at most {MAX_EVENTS_PER_STEP} events per step, got {len(events)}")
        return self.get(npc_id)

    def recall(self, npc_id: str, query: str = "", *, limit: int = 20) -> list[Memory]:
        """The NPC's memories ranked by the retrieval score the agent uses (recency, importance, relevance to
        `query`), best first; an empty query gives the newest first (score 0). A recall is not an access:
        it leaves `last_access_s` alone, so it never changes what the agent retrieves later."""
        if not 1 <= limit <= MAX_RECALL:
            raise InvalidArgument(f"limit must be 1-{MAX_RECALL} (0 = 20), got {limit}")
        self.get(npc_id)
        if not query.strip():
            return self.memory.most_recent(npc_id, limit=limit)
        return self.memory.rank(npc_id, query, limit=limit)

    @staticmethod
    def is_quiet(percept: Percept, events: Sequence[Event]) -> bool:
        """Nothing said, no event: FSM + policy only (no memory, no model call, no escalation)."""
        return not percept.player_utterance and not events

    def step_quiet_batch(self, items: Sequence[tuple[str, Percept]]) -> list[AgentDecision | Exception]:
        """Quiet steps of many NPCs with ONE policy-model call for all of them (what a 10 Hz tick of
        hundreds of NPCs needs). Per-NPC errors (unknown id) come back in place of the decision."""
        started = time.monotonic()
        out: list[AgentDecision | Exception | None] = [None] * len(items)
        pending: list[tuple[int, NpcBrain, Mapping[str, float], object, dict]] = []
        for i, (npc_id, percept) in enumerate(items):
            try:
                brain = self.get(npc_id)
            except NotFound as exc:
                out[i] = exc
                continue
            if not brain.lock.acquire(blocking=False):
                # a slow step (dialogue, escalation) of this NPC is in flight: never make the batch wait for it
                spec = brain.fsm.spec
                out[i] = AgentDecision(npc_id=npc_id, state=spec.name, action=spec.default, arguments={}, dialogue="",
                                       escalated=False, confidence=0.0, source="fsm", allowed_actions=spec.allowed,
                                       reason="busy: a decision for this NPC is in flight; state default")
                continue
            try:
                tick = brain.fsm.tick(GuardContext(values=percept.values, tags=percept.tags), percept.game_time_s)
                spec = brain.fsm.spec
                self._persist_state(brain)
            finally:
                brain.lock.release()
            base = dict(npc_id=npc_id, state=tick.state, allowed_actions=spec.allowed)
            if tick.reflex is not None:
                out[i] = self._reflex_decision(base, tick, 0)
                continue
            role_features = ROLE_FEATURES.get(brain.persona.role)
            values = {**role_features, **percept.values} if role_features else percept.values
            version = self.policies.route(npc_id)
            pending.append((i, version, values, spec, {**base, "policy_version": version.name}))
        # one policy call per version present in the batch (one in all, unless an A/B split is running)
        by_version: dict[str, list] = {}
        for item in pending:
            by_version.setdefault(item[1].name, []).append(item)
        for group in by_version.values():
            policy = group[0][1].policy
            proposals = policy.propose_batch([p[2] for p in group], [p[3].allowed for p in group])
            for (i, _version, _values, spec, base), proposal in zip(group, proposals):
                local = decide_quiet(proposal, default=spec.default, floor=self.config.policy_confidence_floor)
                out[i] = self._decision(base, local, 0)
        latency = (time.monotonic() - started) * 1000.0
        for d in out:
            if isinstance(d, AgentDecision):
                d.latency_ms = latency
                self._count(d)
        return out  # type: ignore[return-value]

    @staticmethod
    def _reflex_decision(base: dict, tick, written: int) -> AgentDecision:
        return AgentDecision(action=tick.reflex.action, arguments=dict(tick.reflex.arguments), dialogue="",
                             escalated=False, reason=f"fsm: reflex in state {tick.state!r} ({tick.reflex.guard.text})",
                             confidence=1.0, source="fsm", memories_written=written, **base)

    def _step_locked(self, brain: NpcBrain, percept: Percept, events: Sequence[Event], deadline: float, *,
                     out: StepOutput | None = None, cancelled: threading.Event | None = None) -> AgentDecision:
        now_s = percept.game_time_s
        said = sanitize_player_text(percept.player_utterance) if percept.player_utterance else ""
        novelty, written = None, 0
        if said or events:
            # perceive: novelty is measured before the new memories exist (they would match themselves)
            query = " ".join([said, *(e.description or e.kind for e in events)]).strip()
            novelty = self.memory.max_relevance(brain.npc_id, query) if query else None
            written = self._perceive(brain, said, events, now_s)

        # FSM: transition, then reflexes
        ctx = GuardContext(values=percept.values, tags=percept.tags, events=frozenset(e.kind for e in events),
                           said=bool(said))
        tick = brain.fsm.tick(ctx, now_s)
        spec = brain.fsm.spec
        allowed, default = spec.allowed, spec.default
        base = dict(npc_id=brain.npc_id, state=tick.state, allowed_actions=allowed)

        if tick.reflex is not None:
            written += self._reflect(brain, now_s)
            return self._reflex_decision(base, tick, written)

        values = percept.values
        role_features = ROLE_FEATURES.get(brain.persona.role)
        if role_features or said:
            values = {**(role_features or {}), **({"player_talking": 1.0} if said else {}), **percept.values}
        version: PolicyVersion = self.policies.route(brain.npc_id)
        base["policy_version"] = version.name
        proposal = version.policy.propose(values, allowed)

        if not said and not events:
            local = decide_quiet(proposal, default=default, floor=self.config.policy_confidence_floor)
            written += self._reflect(brain, now_s)
            return self._decision(base, local, written)

        prompt = DialoguePrompt(persona=brain.persona_text, mood=MOOD_BY_STATE.get(tick.state, "calm"),
                                situation=self._situation(percept, events), player_text=said)
        pending = self._maybe_escalate(brain, proposal, prompt, events, novelty, tick.state, allowed, said,
                                       deadline, now_s, values=values, version=version.name)
        dialogue = version.dialogue or self.dialogue
        if out is not None and hasattr(dialogue, "reply_stream"):
            decision = self._speak_streamed(brain, base, prompt, proposal, pending, written, deadline, now_s, out,
                                            cancelled, dialogue)
        else:
            local = decide_with_dialogue(dialogue, prompt, proposal, allowed=allowed, default=default,
                                         max_tokens=self.config.dialogue_max_tokens, npc_id=brain.npc_id,
                                         timeout_s=deadline - time.monotonic())
            decision = self._decision(base, local, written)
            self._settle(brain, decision, pending, local, now_s)
        decision.memories_written += self._reflect(brain, now_s)
        return decision

    def _settle(self, brain: NpcBrain, decision: AgentDecision, pending: Pending | None,
                local: LocalDecision, now_s: float) -> None:
        """Waits for the escalation (until the deadline) and lets a valid cloud decision replace the local one."""
        if pending is None:
            return
        trigger, handle, example = pending
        result = handle.result()
        try:
            self._decide_escalated(brain, decision, trigger, result, local, now_s)
        finally:
            self._record(decision, trigger, result, example, now_s)

    def _decide_escalated(self, brain: NpcBrain, decision: AgentDecision, trigger: str, result, local: LocalDecision,
                          now_s: float) -> None:
        allowed = decision.allowed_actions
        decision.escalated = result.attempted
        decision.escalation_outcome = result.outcome
        if result.outcome == "ok" and result.decision is not None and result.decision.action in allowed:
            d = result.decision
            decision.action, decision.arguments, decision.dialogue = d.action, dict(d.arguments), d.dialogue
            decision.source, decision.confidence = "cloud", 1.0
            decision.rejected_action = False
            decision.reason = f"escalated ({trigger}): {self.escalation.provider.name} chose {d.action}"
            # remembered, so later retrieval (and RecallMemories) sees what was decided for the NPC
            said = f' and said: "{d.dialogue[:300]}"' if d.dialogue else ""
            self.memory.add(brain.npc_id, f"I chose to {d.action}{said}", kind="decision",
                            importance=DECISION_IMPORTANCE, game_time_s=now_s)
            decision.memories_written += 1
        else:
            decision.source = "fallback"
            decision.rejected_action = decision.rejected_action or result.outcome == "rejected"
            decision.reason = (f"escalated ({trigger}) but {result.outcome}: {result.detail[:120]}; "
                               f"local decision ({local.reason})")

    def _record(self, decision: AgentDecision, trigger: str, result, example: Mapping[str, Any], now_s: float) -> None:
        """Per-version cost, and the escalation's training example for `npcrt distill` (agent/distill/records.py):
        what the policy saw and proposed, what the teacher chose (only a validated, allowed choice), what ran."""
        with self._lock:
            self._version_stats(decision.policy_version).cost_usd += result.cost_usd
        if self.records is None:
            return
        teacher = result.decision.action if result.outcome == "ok" and result.decision is not None else None
        self.records.append({
            **example, "npc_id": decision.npc_id, "state": decision.state, "allowed": list(decision.allowed_actions),
            "trigger": trigger, "outcome": result.outcome, "teacher_action": teacher, "executed": decision.action,
            "provider": self.escalation.provider.name, "model": self.escalation.provider.model,
            "cost_usd": result.cost_usd, "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "game_time_s": now_s, "wall_time_unix": time.time(),
        })

    def _version_stats(self, name: str) -> VersionStats:
        """Under self._lock."""
        stats = self.stats.versions.get(name)
        if stats is None:
            stats = self.stats.versions[name] = VersionStats()
        return stats

    def _speak_streamed(self, brain: NpcBrain, base: dict, prompt: DialoguePrompt, proposal,
                        pending: Pending | None, written: int, deadline: float, now_s: float,
                        out: StepOutput, cancelled: threading.Event | None, dialogue) -> AgentDecision:
        """The local model's turn for `step_stream`: the action once the tag is decoded and any escalation is
        settled, then the rest of the line straight from the engine. Decides exactly as `decide_with_dialogue`
        + `_settle` do for `step` (same tokens, same rules)."""
        allowed, default = base["allowed_actions"], brain.fsm.spec.default
        stream = dialogue.reply_stream(prompt, allowed_actions=order_allowed(allowed, proposal),
                                            max_tokens=self.config.dialogue_max_tokens, npc_id=brain.npc_id)
        try:
            action, probs, tag = stream.action(timeout_s=deadline - time.monotonic())
        except NpcRuntimeError as exc:
            local = dialogue_failed(exc, proposal)
            decision = self._decision(base, local, written)
            self._settle(brain, decision, pending, local, now_s)
            return decision
        if action is None:   # malformed tag: the whole text is the line, as parse_reply reads it (not streamed)
            rest = "".join(stream.pieces(timeout_s=deadline - time.monotonic(), cancelled=cancelled))
            local = decide_from_reply(parse_reply(tag + rest, tokens=stream.tokens, action_probs=probs), proposal,
                                      allowed=allowed, default=default)
            decision = self._decision(base, local, written)
            self._settle(brain, decision, pending, local, now_s)
            return decision
        local = decide_from_reply(DialogueReply(action=action, line="", raw=tag, tokens=stream.tokens,
                                                action_probs=probs), proposal, allowed=allowed, default=default)
        decision = self._decision(base, local, written)
        self._settle(brain, decision, pending, local, now_s)
        if decision.source == "cloud":   # the cloud's line is whole: the caller sends it by sentences
            stream.cancel()
            return decision
        out.action(decision)
        sentences = SentenceDeltas()
        for piece in stream.pieces(timeout_s=self.config.max_deadline_ms / 1000.0, cancelled=cancelled):
            for text, end in sentences.feed(piece):
                out.delta(text, end)
        for text, end in sentences.finish():
            out.delta(text, end)
        decision.dialogue, decision.tokens = sentences.text, stream.tokens
        return decision

    # ---- parts ----------------------------------------------------------------------------------------
    def _perceive(self, brain: NpcBrain, said: str, events: Sequence[Event], now_s: float) -> int:
        written = 0
        for e in events:
            text = (e.description or f"A {e.kind} happened.")[:500]
            importance = e.importance if e.importance > 0 else self.importance.score(text, kind=e.kind)
            importance = min(10.0, max(1.0, importance))
            self.memory.add(brain.npc_id, text, kind=f"event:{e.kind}", importance=importance, game_time_s=now_s)
            brain.importance_since_reflection += importance
            written += 1
        if said:
            text = f'The player said: "{said}"'
            importance = min(10.0, max(1.0, self.importance.score(said)))
            self.memory.add(brain.npc_id, text, kind="utterance", importance=importance, game_time_s=now_s)
            brain.importance_since_reflection += importance
            written += 1
        return written

    def _reflect(self, brain: NpcBrain, now_s: float) -> int:
        if brain.importance_since_reflection < self.config.reflection_threshold:
            return 0
        recent = self.memory.recent(brain.npc_id, since_id=brain.last_reflection_id)
        insights = reflect([m for m in recent if m.kind != "reflection"])
        last_id = recent[-1].id if recent else brain.last_reflection_id
        for text, importance in insights:
            last_id = self.memory.add(brain.npc_id, text, kind="reflection", importance=importance, game_time_s=now_s)
        brain.last_reflection_id = last_id
        brain.importance_since_reflection = 0.0
        with self._lock:
            self.stats.reflections += 1
        return len(insights)

    @staticmethod
    def _situation(percept: Percept, events: Sequence[Event]) -> str:
        parts = [e.description.strip().rstrip(".") for e in events if e.description][:2]
        if not parts:
            where = percept.tags.get("location", "village")
            distance = percept.values.get("player_distance")
            near = f"{distance:.0f} meters away" if distance is not None else "nearby"
            parts = [f"the player is {near} at the {where}"]
        return "; ".join(parts)

    def _maybe_escalate(self, brain: NpcBrain, proposal, prompt: DialoguePrompt, events: Sequence[Event],
                        novelty: float | None, state: str, allowed: tuple[str, ...], said: str, deadline: float,
                        now_s: float, *, values: Mapping[str, float], version: str) -> Pending | None:
        if self.escalation is None:
            return None
        trigger = self.escalation.trigger(confidence=proposal.confidence, margin=proposal.margin,
                                          novelty_similarity=novelty,
                                          story_critical=any(e.story_critical for e in events))
        remaining = deadline - time.monotonic()
        if trigger is None or remaining <= 0.005:
            return None
        memories = self.memory.retrieve(brain.npc_id, prompt.situation + " " + said, now_s=now_s,
                                        token_budget=self.config.memory_token_budget)
        user = build_request_payload(
            npc={"name": brain.persona.name, "role": brain.persona.role, "traits": list(brain.persona.traits),
                 "backstory": brain.persona.backstory[:500]},
            state=state, mood=prompt.mood, allowed=allowed, situation=prompt.situation,
            events=[{"kind": e.kind, "description": e.description[:300], "story_critical": e.story_critical}
                    for e in events],
            memories=[m.text for m in memories],
            local_proposal={"action": proposal.action, "confidence": round(proposal.confidence, 3)},
            player_said=said)
        request = EscalationRequest(npc_id=brain.npc_id, system=SYSTEM_PROMPT, user=user, allowed_actions=allowed,
                                    max_output_tokens=self.escalation.config.max_output_tokens, trigger=trigger,
                                    local_prompt=prompt, local_hint=order_allowed(allowed, proposal),
                                    observation=values)
        example = {"observation": {k: float(v) for k, v in values.items()}, "policy_version": version,
                   "local_action": proposal.action, "local_confidence": round(proposal.confidence, 4),
                   "local_margin": round(proposal.margin, 4)}
        return Pending(trigger, self.escalation.start(request, deadline_s=remaining, game_time_s=now_s), example)

    @staticmethod
    def _decision(base: dict, local: LocalDecision, written: int) -> AgentDecision:
        # base: npc_id, state, allowed_actions and (not for FSM reflexes) policy_version
        return AgentDecision(action=local.action, arguments={}, dialogue=local.line, escalated=False,
                             reason=local.reason, confidence=local.confidence, source=local.source,
                             memories_written=written, rejected_action=local.rejected, tokens=local.tokens, **base)

    def _count(self, d: AgentDecision) -> None:
        _check_allowed(d)
        with self._lock:
            s = self.stats
            s.decisions += 1
            s.by_source[d.source] += 1
            s.actions[d.action] += 1
            s.rejected_actions += int(d.rejected_action)
            s.fallbacks += int(d.source == "fallback")
            s.memories_written += d.memories_written
            s.local_tokens += d.tokens
            s.step_ms.append(d.latency_ms)
            if d.policy_version:    # FSM reflexes use no policy version
                v = self._version_stats(d.policy_version)
                v.decisions += 1
                v.rejected_actions += int(d.rejected_action)
                v.escalations += int(d.escalated)
            if d.escalation_outcome:
                attempted = d.escalated
                s.escalations += int(attempted)
                s.escalations_denied += int(not attempted)
                s.escalation_failures += int(d.escalation_outcome in ("timeout", "error", "rejected"))

    def close(self) -> None:
        if self.escalation is not None:
            self.escalation.close()
        self.memory.close()
        if self.npc_store is not None:
            self.npc_store.close()


def _brain_of(npc: StoredNpc) -> NpcBrain:
    """The brain of a stored NPC, in the FSM state it was stored in."""
    fsm = FsmInstance(npc.fsm, now_s=npc.state_entered_s)
    fsm.state = npc.state
    return NpcBrain(npc_id=npc.npc_id, persona=npc.persona, fsm=fsm, persisted_state=npc.state)
