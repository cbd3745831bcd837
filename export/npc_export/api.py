"""`export_model()`: source (builtin or HF dir) -> profile graph -> self-check -> model package."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InvalidOptions, SourceError, ValidationFailed
from .hf_import import TOKENIZER_FILES, HFSource, load_hf_source
from .package import PackageWriter, graph_io
from .validation import HELD_OUT_CHATS, Thresholds, ValidationConfig, held_out_for, validate_decoder  # noqa: F401 (re-export)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
TARGETS = ("ort", "portable")
# precisions each target can hold (portable: Sentis / NNE quantize weights themselves)
TARGET_PRECISIONS = {"ort": PRECISIONS, "portable": ("fp32", "fp16")}
BUILTIN_PREFIX = "builtin:"


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    timings: dict = field(default_factory=dict)   # step -> seconds


class _Steps:
    """A tqdm bar over the export's steps plus the wall time of each."""

    def __init__(self, names: list[str], *, enabled: bool, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=len(names), desc=desc, disable=not enabled, leave=False, unit="step")
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        self.bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def check_options(precision: str, target: str, context_length: int | None) -> None:
    if target not in TARGETS:
        raise InvalidOptions(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise InvalidOptions(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision not in TARGET_PRECISIONS[target]:
        raise InvalidOptions(
            f"{precision} + {target} is not possible: the portable profile holds fp32 or fp16 weights only "
            f"(Unity Sentis / Unreal NNE quantize weights themselves); use --target ort for {precision}"
        )
    if context_length is not None and int(context_length) < 1:
        raise InvalidOptions(f"--context must be a positive number of positions, got {context_length}")


def _resolve_builtin(name: str) -> tuple[str, object]:
    """builtin:npc-dialogue -> ('causal-lm', Path of its HF dir); builtin:npc-policy -> ('policy', None)."""
    known = ("npc-dialogue", "npc-policy")
    if name not in known:
        raise SourceError(f"unknown built-in model {BUILTIN_PREFIX}{name}; choose one of "
                          + ", ".join(BUILTIN_PREFIX + k for k in known))
    if name == "npc-policy":
        return "policy", None
    try:
        from . import builtin

        return "causal-lm", Path(builtin.dialogue_dir())
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"the built-in dialogue model is not available in this checkout ({exc})") from exc
    except FileNotFoundError as exc:
        raise SourceError(f"the built-in dialogue model's weights are missing ({exc}); train them first") from exc


def export_model(
    source: str | Path,
    out_dir: str | Path,
    *,
    precision: str = "fp32",
    target: str = "ort",
    context_length: int | None = None,
    validate: bool = True,
    force: bool = False,
    progress: bool = True,
    allow_validation_failure: bool = False,
    validation: ValidationConfig | None = None,
) -> ExportResult:
    """Export `source` (a local HF directory, `builtin:npc-dialogue` or `builtin:npc-policy`) to a
    model package at `out_dir` (docs/model-package.md). Raises `ExportError` subclasses."""
    check_options(precision, target, context_length)
    text = str(source)
    name = None
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        kind, path = _resolve_builtin(name)
        if kind == "policy":
            from .policy import export_policy

            return export_policy(out_dir, precision=precision, target=target, validate=validate, force=force,
                                 progress=progress, source_name=text)
    else:
        path = Path(source)
    src = load_hf_source(path, context_length=context_length)
    return _export_decoder(
        src, Path(out_dir), precision=precision, target=target, validate=validate, force=force,
        progress=progress, allow_validation_failure=allow_validation_failure,
        cfg=validation or ValidationConfig(),
        name=name or src.path.name, source_name=text if name else str(src.path.absolute()),
    )


def _builder_for(src: HFSource, target: str):
    from . import ort_profile, portable_profile

    if target == "portable":
        return portable_profile.build_portable
    if src.family.genai_builder:
        return ort_profile.build_with_genai
    return portable_profile.build_ort_own


def _export_decoder(src: HFSource, out_dir: Path, *, precision, target, validate, force, progress,
                    allow_validation_failure, cfg: ValidationConfig, name: str, source_name: str) -> ExportResult:
    steps = _Steps(["load", "export", "validate", "write"], enabled=progress,
                   desc=f"export {name} {target}/{precision}")
    try:
        with PackageWriter(out_dir, force=force) as writer:
            stage = writer.dir
            torch_model = steps.run("load", src.load_torch_model) if validate else None
            build = _builder_for(src, target)
            info = steps.run("export", build, src, stage, precision)
            for file_name in TOKENIZER_FILES:
                if (src.path / file_name).is_file() and not (stage / file_name).exists():
                    shutil.copy2(src.path / file_name, stage / file_name)
            validation = None
            if validate:
                validation = steps.run("validate", _self_check, src, stage, precision, torch_model, cfg)
                if not validation["passed"]:
                    if not allow_validation_failure:
                        raise ValidationFailed(
                            f"{name} {target}/{precision} failed its self-check: "
                            + "; ".join(validation["failures"])
                            + " (thresholds are configurable; --allow-validation-failure writes it anyway)"
                        )
                    validation["overridden"] = True
            manifest = steps.run("write", writer.commit, _manifest(src, stage, info, precision, target, name,
                                                                  source_name, validation))
    finally:
        steps.close()
    return ExportResult(out_dir=writer.out_dir, manifest=manifest, timings=steps.timings)


def _encoder(tokenizer_path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def _self_check(src: HFSource, stage: Path, precision: str, torch_model, cfg: ValidationConfig) -> dict:
    fixed = stage / "model.fixed.onnx"
    tokens = {key: src.tokenizer_config.get(key) for key in ("bos_token", "eos_token", "pad_token")}
    tokens = {k: (v.get("content") if isinstance(v, dict) else v) or "" for k, v in tokens.items()}
    return validate_decoder(
        stage / "model.onnx", torch_model, precision=precision, vocab=src.arch.vocab_size,
        encode=_encoder(src.path / "tokenizer.json"), context_length=src.arch.context_length, cfg=cfg,
        kv_heads=src.arch.num_kv_heads, head_dim=src.arch.head_dim, fixed_path=fixed if fixed.exists() else None,
        held_out=held_out_for(src.chat_template(), tokens, src.held_out_chats() or HELD_OUT_CHATS),
    )


def _manifest(src: HFSource, stage: Path, info, precision, target, name, source_name, validation) -> dict:
    inputs, outputs, opset = graph_io(stage / "model.onnx")
    manifest = {
        "format_version": 1,
        "kind": "causal-lm",
        "name": name,
        "source": source_name,
        "architecture": asdict(src.arch),
        "precision": precision,
        "quantization": info.quantization,
        "target": target,
        "opset": opset,
        "kv_cache": {"layout": info.kv_layout, "capacity": src.arch.context_length, "dtype": info.kv_dtype},
        "inputs": inputs,
        "outputs": outputs,
        "special_tokens": src.special_tokens(),
        "chat_template": src.chat_template(),
        "files": {},
        "validation": validation,
        "policy": None,
    }
    fixed = stage / "model.fixed.onnx"
    if fixed.exists():
        f_inputs, f_outputs, _ = graph_io(fixed)
        manifest["variants"] = {
            "fixed-capacity": {"file": fixed.name, "layout": "fixed-capacity", "capacity": info.fixed_capacity,
                               "inputs": f_inputs, "outputs": f_outputs}
        }
    return manifest
