"""`npcrt demo`: the offline village demo.

Starts the real gRPC server in-process on 127.0.0.1 (port 0) over the built-in packages (exported into a
cache dir on the first run), registers a village of guards, merchants and villagers, and drives them over
the NpcAgent `Play` stream at the frame rate while a scripted player greets, trades, steals, threatens,
tries prompt injections and triggers a story-critical event. Shows what the NPCs say as it happens (a live
table in a terminal, plain lines otherwise); at the end prints a summary and writes summary.json (with the
transcript), transcript.md and timeline.png into `--out` (default demo-out/). Ctrl-C stops early and still
writes what was gathered (exit 130).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from npc_runtime.demo.models import default_cache_dir, ensure_packages
from npc_runtime.demo.report import DEFAULT_OUT, Outputs, prepare_outputs, print_summary, write_outputs

PROVIDERS = ("local", "openai", "anthropic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long the village runs (game seconds, = wall seconds at --speed 1; with --days, "
                             "each day)")
    parser.add_argument("--npcs", type=int, default=8, help="number of NPCs (guards, merchants, villagers)")
    parser.add_argument("--fps", type=int, default=60, help="game frames per second (one Play update per frame)")
    parser.add_argument("--tick-hz", type=float, default=10.0, help="FSM ticks per NPC per second")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for summary.json, transcript.md and timeline.png (default: {DEFAULT_OUT}/)")
    parser.add_argument("--summary-json", type=Path, help="write the summary JSON here instead of OUT/summary.json")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write the PNG timeline here instead of OUT/timeline.png")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where exported packages are kept")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="the same config file `npcrt serve --config` reads (engine, agent, escalation, budgets...)")
    parser.add_argument("--data-dir", default=None,
                        help="keep memories and NPCs here, as `npcrt serve --data-dir` (default: a fresh temp dir)")
    parser.add_argument("--db", default=None, help="memory database (default: DATA_DIR/memory.sqlite3)")
    parser.add_argument("--provider", choices=PROVIDERS, default=None,
                        help="escalation provider (default: NPCRT_ESCALATION_PROVIDER or local)")
    parser.add_argument("--deadline-ms", type=float, default=1000.0,
                        help="deadline of a talk step (dialogue + escalation); quiet FSM ticks never wait on it")
    parser.add_argument("--no-live", action="store_true",
                        help="no live view (default: a table in a terminal, else a line per NPC line every 2 s)")
    parser.add_argument("--no-export", action="store_true",
                        help="use cached packages only (stand-ins for missing ones) instead of exporting them")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--days", type=int, default=0,
                        help="play N in-game days of --seconds each; after each day distill the policy from that "
                             "day's escalations and swap it in (teacher: the offline rules provider unless --provider)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="game seconds per wall second (default 1: real time); e.g. 8 plays a 240 s day in "
                             "30 s, for --days runs that need many moments per day")


def run(args: argparse.Namespace) -> int:
    from npc_runtime.errors import NpcRuntimeError

    for name, value, low in (("--seconds", args.seconds, 0.5), ("--npcs", args.npcs, 1), ("--fps", args.fps, 1),
                             ("--tick-hz", args.tick_hz, 0.1), ("--speed", args.speed, 0.1)):
        if value < low:
            print(f"npcrt demo: {name} must be >= {low}", file=sys.stderr)
            return 2
    if not 0 <= args.days <= 100:
        print("npcrt demo: --days must be within 0-100", file=sys.stderr)
        return 2
    if args.npcs > 2000:
        print("npcrt demo: --npcs must be <= 2000", file=sys.stderr)
        return 2
    try:   # before minutes of export and village: a wrong path is one line now, not a traceback at the end
        outputs = prepare_outputs(out=args.out, summary=args.summary_json, plot=args.plot)
    except NpcRuntimeError as exc:
        print(f"npcrt demo: {exc}", file=sys.stderr)
        return 2
    try:
        demo = Demo(args)
    except NpcRuntimeError as exc:
        print(f"npcrt demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("npcrt demo: interrupted before the village started; nothing written", file=sys.stderr)
        return 130
    try:
        summary = demo.run()
    except NpcRuntimeError as exc:
        print(f"npcrt demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # a second Ctrl-C while the first one was winding the run down
        print("npcrt demo: interrupted twice; nothing written", file=sys.stderr)
        return 130
    finally:
        demo.close()
    return _finish(args, demo, summary, outputs)


def _finish(args: argparse.Namespace, demo: "Demo", summary: dict, outputs: Outputs) -> int:
    """Write the outputs (also after Ctrl-C: what was gathered so far), print the summary, exit code."""
    notes = [f"{summary['npcs']} NPCs, {summary['seconds']} s, models: "
             + ", ".join(f"{k}={v}" for k, v in summary["models"].items()),
             f"{len(summary['transcript'])} entries: {summary['interactions']} steps with words or events, "
             f"{summary['utterances']} lines spoken"]
    try:
        write_outputs(outputs, summary, demo.recorder, demo.village, notes=notes)
    except OSError as exc:   # checked before the run; the disk filled up or the folder went away since
        print(f"npcrt demo: cannot write the outputs in {outputs.folder}: {exc}", file=sys.stderr)
        return 1
    if demo.day_loop is not None and summary.get("days"):
        from npc_runtime.demo.days import plot_days

        try:
            plot_days(summary["days"], outputs.folder / "days.png")
        except OSError as exc:
            print(f"npcrt demo: cannot write {outputs.folder / 'days.png'}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_summary(summary)
    if summary.get("interrupted"):
        print("npcrt demo: interrupted; wrote what was gathered so far", file=sys.stderr)
        return 130
    return 0


class Demo:
    def __init__(self, args: argparse.Namespace):
        """The demo's system is `npcrt serve`'s: one configuration (--config, environment, the demo's flags),
        built by `assembly.build_system`, served by the same NpcServer on 127.0.0.1 (port 0); the village below
        is only a gRPC client of it."""
        from npc_runtime.assembly import build_system
        from npc_runtime.demo.village import Village
        from npc_runtime.settings import load_settings

        self.args = args
        self.packages = ensure_packages(args.cache_dir or default_cache_dir(), export=not args.no_export)
        for note in self.packages.notes:
            print(f"npcrt demo: warning: {note}", file=sys.stderr)
        if self.packages.dialogue is None:
            from npc_runtime.errors import FailedPrecondition

            raise FailedPrecondition("the built-in npc-dialogue package is missing: " + "; ".join(self.packages.notes))
        # a fresh village by default: memories in a temporary data dir unless --data-dir / --db is given
        self._tmp = tempfile.TemporaryDirectory(prefix="npcrt-demo-")
        data_dir = args.data_dir or self._tmp.name
        flags = {
            "server.host": "127.0.0.1", "server.port": 0, "server.http_port": -1, "server.data_dir": data_dir,
            "server.models": [str(self.packages.dialogue)],
            "engine.max_sessions": 64, "engine.intra_op_threads": 2,
            "agent.default_deadline_ms": args.deadline_ms,
            "agent.policy_model": str(self.packages.policy) if self.packages.policy else None,
            "escalation.provider@--provider": args.provider, "memory.db@--db": args.db,
        }
        self.day_loop = None
        if args.days:
            from npc_runtime.demo.days import DAY_FLAGS, TEACHER_PRICED_AS

            flags.update(DAY_FLAGS)
            if args.provider is None:
                flags["escalation.provider@--days"] = "rules"
                flags["escalation.provider_options"] = {"model": TEACHER_PRICED_AS}
        self.system = build_system(load_settings(args.config, flags=flags))
        self.runtime = self.system.agent
        self.escalation = self.runtime.escalation
        provider = self.escalation.provider
        self.village = Village(args.npcs)
        self.models = {"dialogue": getattr(self.runtime.dialogue, "name", "?"),
                       "policy": getattr(self.runtime.policy, "name", "?"),
                       "escalation_provider": f"{provider.name}:{provider.model}"}

    # ---- server -----------------------------------------------------------------------------------------
    async def _start_server(self):
        """`npcrt serve`'s own server (NpcRuntime + NpcAgent), started in this process."""
        server = self.system.server()
        await server.start()
        return server, server.grpc_port

    def close(self) -> None:
        self.system.close()
        self._tmp.cleanup()

    # ---- the village loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        import asyncio

        return asyncio.run(self._run_handling_ctrl_c())

    async def _run_handling_ctrl_c(self) -> dict:
        """`_run` with Ctrl-C delivered by the event loop: the first cancels this task (as `asyncio.run` would),
        a second raises KeyboardInterrupt. `asyncio.run`'s own handler is a Python signal handler that may run
        in the middle of a loop callback: cancelling a timer's future between its "not cancelled" check and
        its `set_result` logged an `InvalidStateError` traceback now and then; a loop signal handler runs
        between callbacks. The loop removes the handler when it closes (SIGINT's default comes back)."""
        import asyncio
        import signal

        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        presses = 0

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses > 1:
                raise KeyboardInterrupt
            task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        return await self._run()

    async def _run(self) -> dict:
        """Server and game client share one event loop; agent steps run on the servicer's thread pool.

        Two Play streams, as a game server would use them: `frames` carries every frame's quiet FSM ticks
        (never slow), `talk` carries the steps with words or events (dialogue, maybe escalation, bounded by the
        step deadline). An NPC with a talk step in flight is busy: it gets no quiet ticks until it answers.

        Ctrl-C cancels this task (`_run_handling_ctrl_c`): the frames stop, the streams, channel and server are
        closed here (a server left to the garbage collector after the loop closed is what printed
        `Server.__del__ ... Event loop is closed`), and the summary of what was gathered comes back with
        `interrupted: true`."""
        import asyncio

        import grpc

        from npc_proto.v1 import agent_pb2 as pb
        from npc_proto.v1 import agent_pb2_grpc

        from npc_runtime.demo.live import make_live_view
        from npc_runtime.demo.transcript import Recorder, heard_text

        args = self.args
        self.recorder = recorder = Recorder({n.npc_id: n.name for n in self.village.npcs},
                                            escalation_provider=self.models.get("escalation_provider", ""))
        if args.days:
            from npc_runtime.demo.days import DayLoop, started_note

            self.day_loop = DayLoop(self.runtime, lambda: recorder.counts, args.out / "policies",
                                    base=str(self.packages.policy or "builtin:npc-policy"))
            print(started_note(args.days, args.seconds), file=sys.stderr, flush=True)
        server, port = await self._start_server()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = agent_pb2_grpc.NpcAgentStub(channel)
        calls = {"frames": stub.Play(), "talk": stub.Play()}

        # (stream, seq) -> (wall time sent, game time, {npc id: what it perceived, "" for a quiet tick})
        sent_at: dict[tuple[str, int], tuple[float, float, dict[str, str]]] = {}
        round_trips: dict[str, list[float]] = {"frames": [], "talk": []}
        errors: list[str] = []
        busy: Counter = Counter()
        registered = asyncio.Event()
        interrupted = False
        frames_sent, late_frames = 0, 0
        started = time.perf_counter()

        async def reader(stream: str):
            try:
                async for resp in calls[stream]:
                    wall, game_t, heard = sent_at.pop((stream, resp.seq), (time.perf_counter(), 0.0, {}))
                    if stream == "talk":
                        busy.subtract(heard.keys())
                    if resp.seq == 0 and stream == "frames":   # seq 0 registers the village: not a frame
                        registered.set()
                    else:
                        round_trips[stream].append((time.perf_counter() - wall) * 1000)
                    for e in resp.errors:
                        errors.append(f"{e.npc_id}: {e.message}")
                    for d in resp.decisions:
                        recorder.add(d, game_time_s=game_t, heard=heard.get(d.npc_id, ""))
            except grpc.aio.AioRpcError as exc:
                if not (interrupted and exc.code() == grpc.StatusCode.CANCELLED):
                    errors.append(f"{stream} stream ended: {exc.code().name}: {exc.details()}")
            finally:
                registered.set()

        readers = [asyncio.create_task(reader(name)) for name in calls]

        async def play() -> None:
            nonlocal frames_sent, late_frames, started
            register = [pb.RegisterNpcRequest(
                npc_id=n.npc_id, persona=pb.Persona(name=n.name, role=n.role, traits=list(_traits(n.role))),
                fsm_name=n.role,
                memories=[pb.MemorySeed(text=f"I am {n.name}, and I live in this village.", importance=3)])
                for n in self.village.npcs]
            sent_at[("frames", 0)] = (time.perf_counter(), 0.0, {})
            await calls["frames"].write(pb.PlayRequest(seq=0, register=register))
            await registered.wait()

            fps = args.fps
            day_frames = int(args.seconds * fps)
            frames = day_frames * max(1, args.days)
            every = max(1, round(fps / args.tick_hz))   # frames between two FSM ticks of one NPC
            index = {n.npc_id: i for i, n in enumerate(self.village.npcs)}
            print(f"npcrt demo: {len(self.village.npcs)} NPCs for {args.seconds:g} s; Ctrl-C stops early and keeps "
                  "what was gathered", file=sys.stderr, flush=True)
            started = time.perf_counter()
            for frame in range(1, frames + 1):
                game_t = frame / fps
                perceptions = self.village.frame(game_t, 1.0 / fps)
                quiet, talk = [], []
                for npc_id, p in perceptions.items():
                    if p.interesting:
                        talk.append(_step(pb, npc_id, p, game_t, args.deadline_ms))
                    elif not (frame + index[npc_id]) % every and busy[npc_id] <= 0:
                        quiet.append(_step(pb, npc_id, p, game_t, args.deadline_ms))
                heard = {s.npc_id: heard_text(s.observation.player_utterance, [e.description for e in s.events])
                         for s in talk}
                for stream, steps in (("frames", quiet), ("talk", talk)):
                    if steps:
                        npcs = {s.npc_id: heard.get(s.npc_id, "") for s in steps}
                        if stream == "talk":
                            busy.update(npcs.keys())
                        sent_at[(stream, frame)] = (time.perf_counter(), game_t, npcs)
                        await calls[stream].write(pb.PlayRequest(seq=frame, steps=steps))
                frames_sent = frame
                live.refresh()
                if self.day_loop is not None and frame % day_frames == 0:
                    paused = time.perf_counter()
                    await end_of_day(frame // day_frames)
                    started += time.perf_counter() - paused     # the day's clock stops while it learns
                wait = started + frame / (fps * args.speed) - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late_frames += 1
                    await asyncio.sleep(0)

        async def end_of_day(day: int) -> None:
            """Let the talk in flight answer (its escalations belong to this day), then distill and swap."""
            limit = time.perf_counter() + args.deadline_ms / 1000.0 + 2.0
            while any(v > 0 for v in busy.values()) and time.perf_counter() < limit:
                await asyncio.sleep(0.02)
            await asyncio.get_running_loop().run_in_executor(None, self.day_loop.end_of_day, day)

        async def drain(timeout_s: float) -> None:
            """Half-close both streams and let the server answer what is in flight (a talk step is bounded by
            its deadline): those answers belong in the transcript, and an RPC cancelled while its step runs
            in a worker thread makes grpc print a CancelledError traceback."""
            try:
                for call in calls.values():
                    await call.done_writing()
            except grpc.RpcError as exc:   # a stream already ended; its reader recorded why
                errors.append(f"closing the streams: {exc}")
            _done, pending = await asyncio.wait(readers, timeout=timeout_s)
            if pending:
                errors.append(f"some updates had no answer {timeout_s:.0f} s after the end")

        out = sys.stderr if args.json else sys.stdout   # --json keeps stdout for the JSON alone
        live = make_live_view(recorder, self.village, enabled=not args.no_live, stream=out)
        with live:
            try:
                interrupted = await _stopped_by_ctrl_c(play())
                drain_s = args.deadline_ms / 1000.0 + 2.0 if interrupted else 30.0
                interrupted = await _stopped_by_ctrl_c(drain(drain_s)) or interrupted
            finally:
                for call in calls.values():
                    call.cancel()
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await channel.close()
                await server.stop(1.0)
        wall = time.perf_counter() - started
        return self._summary(wall, frames_sent, late_frames, round_trips, errors, interrupted=interrupted)

    def _summary(self, wall, frames, late_frames, round_trips, errors, *, interrupted: bool) -> dict:
        import numpy as np

        stats = self.runtime.stats
        esc = self.escalation.stats
        local_out = esc.output_tokens if self.escalation.provider.name == "local" else 0
        rt = np.asarray(round_trips["frames"]) if round_trips["frames"] else np.zeros(1)
        talk = np.asarray(round_trips["talk"]) if round_trips["talk"] else np.zeros(1)
        steps = np.asarray(stats.step_ms) if stats.step_ms else np.zeros(1)
        return {
            "seconds": round(wall, 2), "interrupted": interrupted, "npcs": self.args.npcs, "fps": self.args.fps,
            "frames": frames, "game_seconds": round(frames / self.args.fps, 2), "late_frames": late_frames,
            # decisions, interactions, utterances, escalations, fallbacks, rejected_actions, memories_written,
            # actions_by_name (actions taken), utterances_by_source, decisions_by_source, decisions_by_action
            **self.recorder.summary(),
            "escalation_failures": esc.failures + esc.rejected, "escalations_denied": esc.denied_budget + esc.circuit_open,
            "tick_p99_ms": round(float(np.percentile(rt, 99)), 2), "tick_p50_ms": round(float(np.percentile(rt, 50)), 2),
            "step_p99_ms": round(float(np.percentile(steps, 99)), 2),
            "talk_p50_ms": round(float(np.percentile(talk, 50)), 2), "talk_p99_ms": round(float(np.percentile(talk, 99)), 2),
            "tokens_per_s": round((stats.local_tokens + local_out) / max(wall, 1e-3), 1),
            "reflections": stats.reflections,
            "escalation_cost_usd": round(esc.cost_usd, 6), "escalation_tokens": esc.input_tokens + esc.output_tokens,
            "models": self.models, "errors": errors[:20], "error_count": len(errors),
            **({"days": self.day_loop.days} if self.day_loop is not None else {}),
            "transcript": [e.to_json() for e in self.recorder.transcript],
        }


async def _stopped_by_ctrl_c(coro) -> bool:
    """Await `coro`; True when Ctrl-C cut it short. `asyncio.run` turns the first Ctrl-C into a cancellation
    of its main task (this one): handled here, so the caller can still close the server and write what was
    gathered (a second Ctrl-C raises KeyboardInterrupt from the loop itself)."""
    import asyncio

    try:
        await coro
    except asyncio.CancelledError:
        asyncio.current_task().uncancel()   # handled: later awaits must not re-raise it
        return True
    return False


def _step(pb, npc_id: str, p, game_t: float, deadline_ms: float):
    return pb.StepRequest(
        npc_id=npc_id, deadline_ms=deadline_ms,
        observation=pb.Observation(game_time_s=game_t, values=p.values, tags=p.tags, player_utterance=p.utterance),
        events=[pb.GameEvent(kind=e["kind"], description=e["description"], importance=e.get("importance", 0),
                             story_critical=e.get("story_critical", False)) for e in p.events])


def _traits(role: str) -> tuple[str, ...]:
    from npc_runtime.demo.village import TRAITS

    return TRAITS.get(role, ())[:2]
