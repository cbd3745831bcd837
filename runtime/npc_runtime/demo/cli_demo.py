"""`npcrt demo`: the offline village demo.

Starts the real gRPC server in-process on 127.0.0.1 (port 0) over the built-in packages (exported into a
cache dir on the first run), registers a village of guards, merchants and villagers, and drives them over
the NpcAgent `Play` stream at the frame rate while a scripted player greets, trades, steals, threatens,
tries prompt injections and triggers a story-critical event. Shows a live table; at the end prints a
summary, and writes `--summary-json` and a PNG timeline (`--plot`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from npc_runtime.demo.models import default_cache_dir, ensure_packages

PROVIDERS = ("local", "openai", "anthropic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the village runs (wall seconds)")
    parser.add_argument("--npcs", type=int, default=8, help="number of NPCs (guards, merchants, villagers)")
    parser.add_argument("--fps", type=int, default=60, help="game frames per second (one Play update per frame)")
    parser.add_argument("--tick-hz", type=float, default=10.0, help="FSM ticks per NPC per second")
    parser.add_argument("--summary-json", type=Path, help="write the summary as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG timeline here (default: demo-timeline.png)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where exported packages are kept")
    parser.add_argument("--db", default=None, help="memory database (default: a fresh file in a temp dir)")
    parser.add_argument("--provider", choices=PROVIDERS, default=None,
                        help="escalation provider (default: NPCRT_ESCALATION_PROVIDER or local)")
    parser.add_argument("--deadline-ms", type=float, default=1000.0,
                        help="deadline of a talk step (dialogue + escalation); quiet FSM ticks never wait on it")
    parser.add_argument("--no-live", action="store_true", help="no live table (e.g. in CI logs)")
    parser.add_argument("--no-export", action="store_true",
                        help="use cached packages only (stand-ins for missing ones) instead of exporting them")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from npc_runtime.errors import NpcRuntimeError

    for name, value, low in (("--seconds", args.seconds, 0.5), ("--npcs", args.npcs, 1), ("--fps", args.fps, 1),
                             ("--tick-hz", args.tick_hz, 0.1)):
        if value < low:
            print(f"npcrt demo: {name} must be >= {low}", file=sys.stderr)
            return 2
    if args.npcs > 2000:
        print("npcrt demo: --npcs must be <= 2000", file=sys.stderr)
        return 2
    try:
        demo = Demo(args)
    except NpcRuntimeError as exc:
        print(f"npcrt demo: {exc}", file=sys.stderr)
        return 2
    try:
        summary = demo.run()
    except NpcRuntimeError as exc:
        print(f"npcrt demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.close()
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


class Demo:
    def __init__(self, args: argparse.Namespace):
        from npc_runtime.agent.config import AgentConfig
        from npc_runtime.agent.factory import build_agent_runtime
        from npc_runtime.demo.village import Village

        self.args = args
        self.packages = ensure_packages(args.cache_dir or default_cache_dir(), export=not args.no_export)
        for note in self.packages.notes:
            print(f"npcrt demo: warning: {note}", file=sys.stderr)
        env = dict(os.environ)
        if args.provider:
            env["NPCRT_ESCALATION_PROVIDER"] = args.provider
        self._tmp = tempfile.TemporaryDirectory(prefix="npcrt-demo-")
        db = args.db or str(Path(self._tmp.name) / "memory.sqlite3")
        self.config = AgentConfig.from_mapping({"memory_db": db, "default_deadline_ms": args.deadline_ms}, env=env)
        self.async_engine = None
        model_name = None
        if self.packages.dialogue:
            from npc_runtime.config import EngineConfig
            from npc_runtime.sessions import Engine
            from npc_runtime.sessions.async_engine import AsyncEngine

            engine = Engine.from_packages([self.packages.dialogue],
                                          config=EngineConfig(max_sessions=64, intra_op_threads=2))
            self.async_engine = AsyncEngine(engine)
            model_name = engine.list_models()[0].name
        self.runtime = build_agent_runtime(self.config, async_engine=self.async_engine, dialogue_model=model_name,
                                           policy_package=self.packages.policy)
        self.memory, self.policy, self.dialogue = self.runtime.memory, self.runtime.policy, self.runtime.dialogue
        self.escalation = self.runtime.escalation
        provider = self.escalation.provider
        self.village = Village(args.npcs)
        self.models = {"dialogue": getattr(self.dialogue, "name", "?"), "policy": getattr(self.policy, "name", "?"),
                       "escalation_provider": f"{provider.name}:{provider.model}"}

    # ---- server -----------------------------------------------------------------------------------------
    async def _start_server(self):
        import grpc

        from npc_runtime.serving.agent_servicer import agent_hook

        hook = agent_hook(self.runtime, workers=32)
        if self.async_engine is not None:
            from npc_runtime.serving.config import ServerConfig
            from npc_runtime.serving.server import create_server

            server, port = create_server(self.async_engine, config=ServerConfig(host="127.0.0.1", port=0, http_port=-1),
                                         extra_servicers=[hook])
        else:   # no dialogue package: the agent service alone
            server = grpc.aio.server()
            hook(server, None)
            port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    def close(self) -> None:
        self.runtime.close()
        close = getattr(self.dialogue, "close", None)
        if close:
            close()
        self._tmp.cleanup()

    # ---- the village loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        import asyncio

        return asyncio.run(self._run())

    async def _run(self) -> dict:
        """Server and game client share one event loop; agent steps run on the servicer's thread pool.

        Two Play streams, as a game server would use them: `frames` carries every frame's quiet FSM ticks
        (never slow), `talk` carries the steps with words or events (dialogue, maybe escalation, bounded by the
        step deadline). An NPC with a talk step in flight is busy: it gets no quiet ticks until it answers."""
        import asyncio

        import grpc

        from npc_proto.v1 import agent_pb2 as pb
        from npc_proto.v1 import agent_pb2_grpc

        args = self.args
        server, port = await self._start_server()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = agent_pb2_grpc.NpcAgentStub(channel)
        calls = {"frames": stub.Play(), "talk": stub.Play()}

        sent_at: dict[tuple[str, int], tuple[float, float, list[str]]] = {}   # (stream, seq) -> (wall, game t, npcs)
        latest: dict[str, object] = {}
        timeline: dict[str, list[tuple[float, str, str, str, bool]]] = defaultdict(list)
        round_trips: dict[str, list[float]] = {"frames": [], "talk": []}
        errors: list[str] = []
        counts = Counter()
        actions = Counter()
        sources = Counter()
        busy: Counter = Counter()
        registered = asyncio.Event()

        async def reader(stream: str):
            try:
                async for resp in calls[stream]:
                    wall, game_t, npcs = sent_at.pop((stream, resp.seq), (time.perf_counter(), 0.0, []))
                    if stream == "talk":
                        busy.subtract(npcs)
                    if resp.seq == 0 and stream == "frames":   # seq 0 registers the village: not a frame
                        registered.set()
                    else:
                        round_trips[stream].append((time.perf_counter() - wall) * 1000)
                    for e in resp.errors:
                        errors.append(f"{e.npc_id}: {e.message}")
                    for d in resp.decisions:
                        latest[d.npc_id] = d
                        counts["decisions"] += 1
                        counts["escalations"] += int(d.escalated)
                        counts["rejected_actions"] += int(d.rejected_action)
                        counts["fallbacks"] += int(d.source == pb.DECISION_SOURCE_FALLBACK)
                        counts["memories_written"] += d.memories_written
                        actions[d.action] += 1
                        sources[pb.DecisionSource.Name(d.source).removeprefix("DECISION_SOURCE_").lower()] += 1
                        timeline[d.npc_id].append((game_t, d.state, d.action,
                                                   pb.DecisionSource.Name(d.source), d.escalated))
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{stream} stream ended: {exc.code().name}: {exc.details()}")
            finally:
                registered.set()

        readers = [asyncio.create_task(reader(name)) for name in calls]
        register = [pb.RegisterNpcRequest(
            npc_id=n.npc_id, persona=pb.Persona(name=n.name, role=n.role, traits=list(_traits(n.role))),
            fsm_name=n.role, memories=[pb.MemorySeed(text=f"I am {n.name}, and I live in this village.", importance=3)])
            for n in self.village.npcs]
        sent_at[("frames", 0)] = (time.perf_counter(), 0.0, [])
        await calls["frames"].write(pb.PlayRequest(seq=0, register=register))
        await registered.wait()

        fps = args.fps
        frames = int(args.seconds * fps)
        every = max(1, round(fps / args.tick_hz))   # frames between two FSM ticks of one NPC
        index = {n.npc_id: i for i, n in enumerate(self.village.npcs)}
        started = time.perf_counter()
        late_frames = 0
        live = _LiveTable(self, latest, enabled=not args.no_live and sys.stdout.isatty())
        with live:
            for frame in range(1, frames + 1):
                game_t = frame / fps
                perceptions = self.village.frame(game_t, 1.0 / fps)
                quiet, talk = [], []
                for npc_id, p in perceptions.items():
                    if p.interesting:
                        talk.append(_step(pb, npc_id, p, game_t, args.deadline_ms))
                    elif not (frame + index[npc_id]) % every and busy[npc_id] <= 0:
                        quiet.append(_step(pb, npc_id, p, game_t, args.deadline_ms))
                for stream, steps in (("frames", quiet), ("talk", talk)):
                    if steps:
                        npcs = [s.npc_id for s in steps]
                        if stream == "talk":
                            busy.update(npcs)
                        sent_at[(stream, frame)] = (time.perf_counter(), game_t, npcs)
                        await calls[stream].write(pb.PlayRequest(seq=frame, steps=steps))
                live.maybe_refresh()
                wait = started + frame / fps - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late_frames += 1
                    await asyncio.sleep(0)
            for call in calls.values():
                await call.done_writing()
            try:
                await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
            except asyncio.TimeoutError:
                errors.append("some updates had no answer 30 s after the end")
        wall = time.perf_counter() - started
        await channel.close()
        await server.stop(1.0)
        return self._summary(wall, frames, late_frames, counts, actions, sources, round_trips, errors, timeline)

    def _summary(self, wall, frames, late_frames, counts, actions, sources, round_trips, errors, timeline) -> dict:
        import numpy as np

        stats = self.runtime.stats
        esc = self.escalation.stats
        local_out = esc.output_tokens if self.escalation.provider.name == "local" else 0
        rt = np.asarray(round_trips["frames"]) if round_trips["frames"] else np.zeros(1)
        talk = np.asarray(round_trips["talk"]) if round_trips["talk"] else np.zeros(1)
        steps = np.asarray(stats.step_ms) if stats.step_ms else np.zeros(1)
        summary = {
            "seconds": round(wall, 2), "npcs": self.args.npcs, "fps": self.args.fps, "frames": frames,
            "late_frames": late_frames,
            "decisions": counts["decisions"], "escalations": counts["escalations"],
            "escalation_failures": esc.failures + esc.rejected, "escalations_denied": esc.denied_budget + esc.circuit_open,
            "fallbacks": counts["fallbacks"], "rejected_actions": counts["rejected_actions"],
            "actions_by_name": dict(sorted(actions.items())), "decisions_by_source": dict(sorted(sources.items())),
            "tick_p99_ms": round(float(np.percentile(rt, 99)), 2), "tick_p50_ms": round(float(np.percentile(rt, 50)), 2),
            "step_p99_ms": round(float(np.percentile(steps, 99)), 2),
            "talk_p50_ms": round(float(np.percentile(talk, 50)), 2), "talk_p99_ms": round(float(np.percentile(talk, 99)), 2),
            "tokens_per_s": round((stats.local_tokens + local_out) / wall, 1),
            "memories_written": counts["memories_written"], "reflections": stats.reflections,
            "escalation_cost_usd": round(esc.cost_usd, 6), "escalation_tokens": esc.input_tokens + esc.output_tokens,
            "models": self.models, "errors": errors[:20], "error_count": len(errors),
        }
        plot = self.args.plot or Path("demo-timeline.png")
        try:
            plot_timeline(timeline, self.village, plot, self.escalation, self.memory)
            summary["plot"] = str(plot)
        except Exception as exc:  # noqa: BLE001 - a failed plot must not lose the summary
            summary["plot_error"] = f"{type(exc).__name__}: {exc}"
        return summary


def _step(pb, npc_id: str, p, game_t: float, deadline_ms: float):
    return pb.StepRequest(
        npc_id=npc_id, deadline_ms=deadline_ms,
        observation=pb.Observation(game_time_s=game_t, values=p.values, tags=p.tags, player_utterance=p.utterance),
        events=[pb.GameEvent(kind=e["kind"], description=e["description"], importance=e.get("importance", 0),
                             story_critical=e.get("story_critical", False)) for e in p.events])


def _traits(role: str) -> tuple[str, ...]:
    from npc_runtime.demo.village import TRAITS

    return TRAITS.get(role, ())[:2]


class _LiveTable:
    """A rich Live table of every NPC's latest decision, refreshed 4 times a second."""

    def __init__(self, demo: Demo, latest: dict, *, enabled: bool):
        self.demo, self.latest, self.enabled = demo, latest, enabled
        self._live = None
        self._next = 0.0

    def __enter__(self):
        if self.enabled:
            from rich.live import Live

            self._live = Live(self._render(), auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(*exc)

    def maybe_refresh(self) -> None:
        now = time.perf_counter()
        if self._live is None or now < self._next:
            return
        self._next = now + 0.25
        self._live.update(self._render(), refresh=True)

    def _render(self):
        from rich.table import Table

        from npc_proto.v1 import agent_pb2 as pb

        s = self.demo.runtime.stats
        table = Table(title=f"npcrt demo — village of {len(self.demo.village.npcs)} NPCs · decisions {s.decisions} · "
                            f"escalations {s.escalations} · fallbacks {s.fallbacks} · memories {s.memories_written}")
        for col in ("npc", "name", "state", "action", "source", "says"):
            table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=60 if col == "says" else 16)
        for npc in self.demo.village.npcs[:40]:
            d = self.latest.get(npc.npc_id)
            if d is None:
                table.add_row(npc.npc_id, npc.name, "-", "-", "-", "")
                continue
            source = pb.DecisionSource.Name(d.source).removeprefix("DECISION_SOURCE_").lower()
            flag = " ⚠" if d.rejected_action else (" ☁" if d.escalated else "")
            table.add_row(npc.npc_id, npc.name, d.state, d.action, source + flag, d.dialogue)
        return table


def plot_timeline(timeline, village, path: Path, escalation, memory) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = sorted({s for rows in timeline.values() for _, s, *_ in rows})
    cmap = plt.get_cmap("tab10")
    color = {s: cmap(i % 10) for i, s in enumerate(states)}
    npcs = [n.npc_id for n in village.npcs][:60]
    fig, ax = plt.subplots(figsize=(12, 1.0 + 0.45 * len(npcs)))
    end = max((rows[-1][0] for rows in timeline.values() if rows), default=1.0)
    for y, npc_id in enumerate(npcs):
        rows = timeline.get(npc_id, [])
        for i, (t, state, action, source, escalated) in enumerate(rows):
            t_next = rows[i + 1][0] if i + 1 < len(rows) else end
            ax.barh(y, max(1e-3, t_next - t), left=t, color=color[state], height=0.6, linewidth=0)
            if escalated:
                ax.plot(t, y, marker="*", color="black", markersize=9)
            elif source == "DECISION_SOURCE_FSM":
                ax.plot(t, y, marker="|", color="red", markersize=10)
    ax.set_yticks(range(len(npcs)))
    ax.set_yticklabels(npcs)
    ax.invert_yaxis()
    ax.set_xlabel("game time (s)")
    ax.set_title("NPC states over time (bars), escalations (*), FSM reflexes (|)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=color[s]) for s in states]
    ax.legend(handles, states, title="state", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    for t, text in village.log:
        ax.axvline(t, color="grey", alpha=0.15, linewidth=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="npcrt demo summary", show_header=False)
    for key in ("seconds", "npcs", "decisions", "escalations", "escalation_failures", "escalations_denied", "fallbacks",
                "rejected_actions", "tick_p50_ms", "tick_p99_ms", "talk_p50_ms", "talk_p99_ms", "step_p99_ms", "tokens_per_s", "memories_written",
                "reflections", "escalation_cost_usd", "late_frames", "error_count"):
        table.add_row(key, str(summary.get(key)))
    table.add_row("actions_by_name", ", ".join(f"{k}={v}" for k, v in summary["actions_by_name"].items()))
    table.add_row("decisions_by_source", ", ".join(f"{k}={v}" for k, v in summary["decisions_by_source"].items()))
    table.add_row("models", ", ".join(f"{k}={v}" for k, v in summary["models"].items()))
    if "plot" in summary:
        table.add_row("timeline", summary["plot"])
    Console().print(table)
