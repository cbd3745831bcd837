"""`--int8-kernel matmulinteger`: int8 weights through MatMulInteger (dynamic activation quantization), the
fast batched int8; recorded as not batch-invariant in the manifest; the self-check gate still applies."""

import json

import onnx
import pytest

from npc_export import export_model
from npc_export.cli_export import add_arguments
from npc_export.errors import InvalidOptions


def _ops(pkg):
    return {n.op_type for n in onnx.load(str(pkg / "model.onnx"), load_external_data=False).graph.node}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_matmulinteger_export_validates_and_records_the_trade_off(tmp_path, tiny_models, fast_validation, family):
    result = export_model(tiny_models(family), tmp_path / "pkg", precision="int8", progress=False,
                          validation=fast_validation, int8_kernel="matmulinteger")
    m = result.manifest
    q = m["quantization"]
    assert m["precision"] == "int8" and q["method"] == "MatMulInteger" and q["bits"] == 8
    assert q["batch_invariant"] is False
    assert q["embedding"] is not None             # the token table is int8 as with MatMulNBits
    assert m["validation"]["passed"] and "greedy_agreement" in m["validation"]
    ops = _ops(result.out_dir)
    assert "MatMulInteger" in ops and "MatMulNBits" not in ops
    if family == "gpt2":
        # attention's activation x activation MatMuls stay float: only constant weights are quantized
        assert "MatMul" in ops
    files = sorted(p.name for p in result.out_dir.iterdir())
    assert not [f for f in files if f.startswith("quantized.")], files
    assert set(json.loads((result.out_dir / "manifest.json").read_text())["files"]) <= set(files)


def test_default_int8_stays_matmulnbits_and_batch_invariant(tmp_path, tiny_models, fast_validation):
    m = export_model(tiny_models("llama"), tmp_path / "pkg", precision="int8", progress=False,
                     validation=fast_validation).manifest
    assert m["quantization"]["method"] == "MatMulNBits" and m["quantization"]["batch_invariant"] is True


@pytest.mark.parametrize("precision,target,kernel", [("int4", "ort", "matmulinteger"),
                                                     ("fp16", "portable", "matmulinteger"),
                                                     ("int8", "ort", "qdq")])
def test_int8_kernel_refused_where_it_does_not_apply(tmp_path, tiny_models, precision, target, kernel):
    with pytest.raises(InvalidOptions, match="int8"):
        export_model(tiny_models("llama"), tmp_path / "pkg", precision=precision, target=target, progress=False,
                     int8_kernel=kernel)
    assert not (tmp_path / "pkg").exists()


def test_cli_flag():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "m", "--out", "o", "--precision", "int8", "--int8-kernel", "matmulinteger"])
    assert args.int8_kernel == "matmulinteger"
    assert parser.parse_args(["--model", "m", "--out", "o"]).int8_kernel == "matmulnbits"


def test_default_int8_greedy_output_is_identical_batched_or_alone(tmp_path, tiny_models, fast_validation):
    """The guarantee matmulinteger gives up (docs/exporter.md) holds for the default int8 kernel."""
    from npc_runtime.config import EngineConfig, SessionLimits
    from npc_runtime.decode.sampling import SamplingParams
    from npc_runtime.sessions import Engine, TickRequest

    pkg = export_model(tiny_models("llama"), tmp_path / "pkg", precision="int8", progress=False,
                       validation=fast_validation).out_dir
    prompts, tokens = ["The blacksmith sells", "Hello traveller", "The dragon sleeps under", "Guard!"], 12

    def engine(sessions):
        return Engine.from_packages([pkg], config=EngineConfig(
            max_sessions=sessions, max_context=64, intra_op_threads=1, warmup=False,
            default_sampling=SamplingParams(ignore_eos=True), default_limits=SessionLimits(max_new_tokens=tokens)))

    alone = []
    for prompt in prompts:
        e = engine(1)
        sid = e.open_session(e.list_models()[0].name, prompt=prompt)
        alone.append([t for c in e.generate(sid, max_tokens=tokens) for t in c.token_ids])
    e = engine(len(prompts))
    sids = [e.open_session(e.list_models()[0].name, prompt=p) for p in prompts]
    got = {s: [] for s in sids}
    while any(len(v) < tokens for v in got.values()):
        for r in e.tick([TickRequest(s, 1e6, tokens) for s in sids if len(got[s]) < tokens]):
            got[r.session_id] += r.token_ids
    assert [got[s] for s in sids] == alone
