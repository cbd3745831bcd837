"""NpcAgent.ListPolicies / ReloadPolicies on a real in-process gRPC server, over the real reload path
(System.reload_from_config -> assembly.load_policy_versions -> PolicyVersions.install), as SIGHUP runs it."""

from __future__ import annotations

import shutil

import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_proto.v1 import agent_pb2_grpc

from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.distill import DistillConfig, distill_records
from npc_runtime.agent.versions import PolicyVersions
from npc_runtime.assembly import System, load_policy_versions
from npc_runtime.builtin_packages import locate
from npc_runtime.serving.agent_servicer import agent_hook
from npc_runtime.settings import load_settings

from .test_distill import _records

def _settings(tmp_path, **agent):
    return load_settings(None, env={}, flags={"server.data_dir": str(tmp_path / "data"),
                                              **{f"agent.{k}": v for k, v in agent.items()}})


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    out = tmp_path_factory.mktemp("pkgs") / "d1"
    distill_records(_records(40), "builtin:npc-policy", out, version="d1", config=DistillConfig(steps=50),
                    progress=False)
    return out


async def test_list_and_reload_policies(tmp_path, distilled):
    base = str(locate("npc-policy"))
    settings = _settings(tmp_path, policy_versions={"d1": str(distilled)}, policy_default="d1",
                         policy_routing=[{"version": "base", "match": "guard-*"}])
    versions, default, rules = load_policy_versions(settings.agent, base)
    runtime = AgentRuntime(config=AgentConfig(memory_db=":memory:"),
                           policies=PolicyVersions(versions, default=default, rules=rules))
    system = System(settings=settings, engine=None, agent=runtime, models=(), policy_package=base)
    config = {"now": settings}
    system.settings_loader = lambda: config["now"]     # what `npcrt serve` sets: its config file re-read

    server = grpc.aio.server()
    agent_hook(runtime, workers=2, reload=system.reload_from_config)(server, None)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = agent_pb2_grpc.NpcAgentStub(channel)
    try:
        await stub.RegisterNpc(pb.RegisterNpcRequest(npc_id="villager-01", persona=pb.Persona(name="Pip", role="villager"),
                                                     fsm_name="villager"))
        for t in range(3):
            decision = await stub.Step(pb.StepRequest(npc_id="villager-01", observation=pb.Observation(
                game_time_s=float(t), values={"player_distance": 30.0})))
            assert decision.policy_version == "d1"          # the client sees which version decided

        listed = await stub.ListPolicies(pb.ListPoliciesRequest())
        assert listed.default_version == "d1"
        assert [v.name for v in listed.versions] == ["base", "d1"]
        d1 = listed.versions[1]
        assert d1.is_default and d1.package == str(distilled)
        assert (d1.base_version, d1.generation, d1.records) == ("npc-policy", 1, 40)
        assert d1.decisions == 3 and listed.versions[0].decisions == 0
        assert 0.0 <= d1.escalation_rate <= 1.0
        assert [(r.version, r.match, r.fraction) for r in listed.routing] == [("base", "guard-*", 1.0)]
        generation = listed.generation

        # a bad package in the configuration: FAILED_PRECONDITION naming it, the running versions stay
        broken = tmp_path / "broken"
        shutil.copytree(distilled, broken)
        (broken / "model.onnx").write_bytes(b"not an onnx graph")
        config["now"] = _settings(tmp_path, policy_versions={"d1": str(distilled), "d2": str(broken)},
                                  policy_default="d2")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReloadPolicies(pb.ReloadPoliciesRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "'d2'" in err.value.details() and "running policy versions stay" in err.value.details()
        after = await stub.ListPolicies(pb.ListPoliciesRequest())
        assert after.generation == generation and after.default_version == "d1"

        # a rule naming a version that is not loaded: refused the same way
        config["now"] = _settings(tmp_path, policy_routing=[{"version": "nope"}])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReloadPolicies(pb.ReloadPoliciesRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "nope" in err.value.details()

        # a good configuration swaps at once; the NPC goes on with the new default
        config["now"] = _settings(tmp_path, policy_versions={"d1": str(distilled)})
        reloaded = await stub.ReloadPolicies(pb.ReloadPoliciesRequest())
        assert reloaded.policies.default_version == "base" and not reloaded.policies.routing
        assert reloaded.policies.generation == generation + 1 and "default base" in reloaded.summary
        await stub.Step(pb.StepRequest(npc_id="villager-01", observation=pb.Observation(
            game_time_s=5.0, values={"player_distance": 30.0})))
        counts = {v.name: v.decisions for v in (await stub.ListPolicies(pb.ListPoliciesRequest())).versions}
        assert counts == {"base": 1, "d1": 3}
    finally:
        await channel.close()
        await server.stop(None)
        runtime.close()


async def test_reload_without_a_configuration_is_refused(tmp_path):
    runtime = AgentRuntime(config=AgentConfig(memory_db=":memory:"))
    server = grpc.aio.server()
    agent_hook(runtime, workers=1)(server, None)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = agent_pb2_grpc.NpcAgentStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReloadPolicies(pb.ReloadPoliciesRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = await stub.ListPolicies(pb.ListPoliciesRequest())
        assert [v.name for v in listed.versions] == ["base"] and listed.versions[0].package == ""
    finally:
        await channel.close()
        await server.stop(None)
        runtime.close()


def _wait_for(proc, text: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in proc.stderr:
        assert time.monotonic() < deadline, f"no {text!r} in the server's stderr:\n{proc.stderr[-2000:]}"
        time.sleep(0.05)


def test_npcrt_serve_sighup_and_the_admin_rpc_reload_the_config_file(tmp_path, distilled):
    """The product path: `npcrt serve --config FILE`; the file is edited, then SIGHUP or ReloadPolicies."""
    import signal

    from tests.helpers.serve_process import ServeProcess

    def config(**versions) -> str:
        table = ", ".join(f'{name} = "{path}"' for name, path in versions.items())
        default = next(iter(versions), "base")
        return f'[agent]\npolicy_versions = {{ {table} }}\npolicy_default = "{default}"\n'

    broken = tmp_path / "broken"
    shutil.copytree(distilled, broken)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    with ServeProcess(config=config(d1=distilled), workdir=tmp_path / "serve") as server:
        stub = server.agent_stub()
        first = stub.ListPolicies(pb.ListPoliciesRequest(), timeout=30)
        assert first.default_version == "d1" and [v.name for v in first.versions] == ["base", "d1"]

        (server.workdir / "npcrt.toml").write_text(config(d2=broken))
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(server, "policy version 'd2'")    # the whole line: stderr arrives in chunks
        assert "reload refused, still serving the previous policy versions" in server.stderr
        with pytest.raises(grpc.RpcError) as err:
            stub.ReloadPolicies(pb.ReloadPoliciesRequest(), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'d2'" in err.value.details()
        still = stub.ListPolicies(pb.ListPoliciesRequest(), timeout=30)
        assert still.default_version == "d1" and still.generation == first.generation

        (server.workdir / "npcrt.toml").write_text(config())
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(server, "npcrt serve: reloaded")
        now = stub.ListPolicies(pb.ListPoliciesRequest(), timeout=30)
        assert now.default_version == "base" and [v.name for v in now.versions] == ["base"]
        assert now.generation == first.generation + 1
