"""The agent loop: the batched quiet path agrees with single steps; decisions stay in the allowed set."""

from __future__ import annotations

from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.types import Event, Percept

from .conftest import make_runtime, register_guard


def test_quiet_batch_matches_single_steps(memory):
    rt_single, rt_batch = make_runtime(memory), make_runtime(MemoryStore(":memory:"))
    for rt in (rt_single, rt_batch):
        register_guard(rt, "a")
        register_guard(rt, "b")
    percepts = [Percept(1.0, {"player_distance": 10}), Percept(1.0, {"player_distance": 2, "player_hostility": 0.9,
                                                                     "player_armed": 1})]
    single = [rt_single.step(n, p) for n, p in zip("ab", percepts)]
    batch = rt_batch.step_quiet_batch([("a", percepts[0]), ("b", percepts[1]), ("ghost", percepts[0])])
    assert [(d.state, d.action, d.source) for d in single] == [(d.state, d.action, d.source) for d in batch[:2]]
    assert batch[1].state == "combat"
    assert type(batch[2]).__name__ == "NotFound"


def test_interaction_uses_dialogue_and_counts(memory):
    rt = make_runtime(memory)
    register_guard(rt)
    d = rt.step("guard-01", Percept(1.0, {"player_distance": 3}, player_utterance="Hello there!"),
                [Event("greeting", "The player waves.")])
    assert d.source == "local_model" and d.dialogue and d.action in d.allowed_actions and d.memories_written == 2
    assert rt.stats.decisions == 1 and rt.stats.actions[d.action] == 1 and rt.stats.memories_written == 2


def test_quiet_batch_never_waits_for_a_busy_npc(memory):
    import threading
    import time

    class SlowDialogue:
        name = "slow"

        def reply(self, prompt, *, allowed_actions, max_tokens, npc_id, seed=None, timeout_s=None):
            from npc_runtime.agent.dialogue import DialogueReply
            time.sleep(0.5)
            return DialogueReply(action=allowed_actions[0], line="Hm.", raw="", tokens=1)

    rt = make_runtime(memory)
    rt.dialogue = SlowDialogue()
    register_guard(rt, "a")
    register_guard(rt, "b")
    talker = threading.Thread(target=rt.step, args=("a", Percept(1.0, {"player_distance": 2}, player_utterance="Hi")),
                              kwargs={"deadline_ms": 2000})
    talker.start()
    time.sleep(0.1)
    started = time.monotonic()
    busy, free = rt.step_quiet_batch([("a", Percept(1.1, {})), ("b", Percept(1.1, {}))])
    assert time.monotonic() - started < 0.2
    assert busy.reason.startswith("busy") and busy.action in busy.allowed_actions
    assert free.source == "policy"
    talker.join()


def test_dialogue_timeout_acts_on_the_policy(memory):
    from npc_runtime.errors import DeadlineExceeded

    class TimingOut:
        name = "timing-out"

        def reply(self, prompt, *, allowed_actions, max_tokens, npc_id, seed=None, timeout_s=None):
            raise DeadlineExceeded("no reply in time")

    rt = make_runtime(memory)
    rt.dialogue = TimingOut()
    register_guard(rt)
    d = rt.step("guard-01", Percept(1.0, {"player_distance": 3}, player_utterance="Hello?"))
    assert d.source == "policy" and d.action in d.allowed_actions and d.dialogue == "" and "dialogue model failed" in d.reason
