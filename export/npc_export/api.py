"""`export_model()`: source (builtin or HF dir) -> profile graph -> self-check -> model package."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InvalidOptions, SourceError, ValidationFailed
from .hf_import import TOKENIZER_FILES, HFSource, load_hf_source
from .interrupt import interruptible
from .package import DEFAULT_FILE_MODE, PackageWriter, check_file_mode, graph_io
from .progress import Stages
from .threads import DEFAULT_THREADS, check_threads, torch_threads
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
    timings: dict = field(default_factory=dict)   # stage -> seconds: load, export, validate, write
    notes: list = field(default_factory=list)     # stale temp folders removed / left beside out_dir


def check_options(precision: str, target: str, context_length: int | None,
                  int8_kernel: str = "matmulnbits") -> None:
    from .ort_profile import DEFAULT_INT8_KERNEL, INT8_KERNELS

    if int8_kernel not in INT8_KERNELS:
        raise InvalidOptions(f"unknown int8 kernel {int8_kernel!r}; choose one of {', '.join(INT8_KERNELS)}")
    if int8_kernel != DEFAULT_INT8_KERNEL and (precision, target) != ("int8", "ort"):
        raise InvalidOptions(f"--int8-kernel {int8_kernel} applies to --precision int8 --target ort only")
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
    threads: int = DEFAULT_THREADS,
    file_mode: int = DEFAULT_FILE_MODE,
    handle_signals: bool = True,
    int8_kernel: str = "matmulnbits",
) -> ExportResult:
    """Export `source` (a local HF directory, `builtin:npc-dialogue` or `builtin:npc-policy`) to a
    model package at `out_dir` (docs/model-package.md). Raises `ExportError` subclasses, and
    `ExportInterrupted` (a KeyboardInterrupt) on SIGTERM / SIGHUP / SIGINT, the partial package removed.

    progress: stage lines on stderr (a live line in a terminal, one line per stage otherwise).
    threads: intra-op threads of PyTorch and ONNX Runtime while exporting (threads.py; no spinning).
    force: replace `out_dir` when it holds a model package (a manifest the reader accepts) or is empty; any
    other non-empty folder is an OutputError, so a typo never deletes a user's files.
    file_mode: mode of every package file (directories get the matching search bits), minus the umask.
    handle_signals: install the SIGTERM / SIGHUP / SIGINT handlers for the export (main thread only).
    int8_kernel: matmulnbits (batch-invariant) or matmulinteger (faster at large batches, not batch-invariant;
    docs/exporter.md, Precisions)."""
    check_options(precision, target, context_length, int8_kernel)
    check_threads(threads)
    check_file_mode(file_mode)
    with contextlib.ExitStack() as stack:
        if handle_signals:
            stack.enter_context(interruptible())
        stack.enter_context(torch_threads(threads))
        return _export(source, Path(out_dir), precision=precision, target=target, context_length=context_length,
                       validate=validate, force=force, progress=progress,
                       allow_validation_failure=allow_validation_failure, cfg=validation or ValidationConfig(),
                       threads=threads, file_mode=file_mode, int8_kernel=int8_kernel)


def _export(source, out_dir: Path, *, precision, target, context_length, validate, force, progress,
            allow_validation_failure, cfg, threads, file_mode, int8_kernel="matmulnbits") -> ExportResult:
    text = str(source)
    name = None
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        kind, path = _resolve_builtin(name)
        if kind == "policy":
            from .policy import export_policy

            return export_policy(out_dir, precision=precision, target=target, validate=validate, force=force,
                                 progress=progress, source_name=text, threads=threads, file_mode=file_mode)
    else:
        path = Path(source)
    src = load_hf_source(path, context_length=context_length)
    return _export_decoder(
        src, out_dir, precision=precision, target=target, validate=validate, force=force,
        progress=progress, allow_validation_failure=allow_validation_failure, cfg=cfg,
        name=name or src.path.name, source_name=text if name else str(src.path.absolute()),
        threads=threads, file_mode=file_mode, int8_kernel=int8_kernel,
    )


def _builder_for(src: HFSource, target: str):
    from . import ort_profile, portable_profile

    if target == "portable":
        return portable_profile.build_portable
    if src.family.genai_builder:
        return ort_profile.build_with_genai
    return portable_profile.build_ort_own


def decoder_stages(target: str, precision: str, *, validate: bool) -> list[tuple[str, str]]:
    """(timing key, label) of a decoder export's stages, in order."""
    how = "onnxruntime-genai builder" if target == "ort" else "torch.onnx, opset 15"
    stages = [("load", "load PyTorch model")] if validate else []
    stages.append(("export", f"build {target} graph, {precision} ({how})"))
    if validate:
        stages.append(("validate", "self-check vs PyTorch"))
    return stages + [("write", "write package")]


def _export_decoder(src: HFSource, out_dir: Path, *, precision, target, validate, force, progress,
                    allow_validation_failure, cfg: ValidationConfig, name: str, source_name: str,
                    threads: int, file_mode: int, int8_kernel: str = "matmulnbits") -> ExportResult:
    stages = Stages(decoder_stages(target, precision, validate=validate), enabled=progress,
                    desc=f"{name} {target}/{precision}")
    try:
        with PackageWriter(out_dir, force=force, file_mode=file_mode) as writer:
            for note in writer.notes:
                stages.note(note)
            stage = writer.dir
            torch_model = stages.run("load", src.load_torch_model) if validate else None
            build = _builder_for(src, target)
            kernel = {"int8_kernel": int8_kernel} if target == "ort" else {}
            info = stages.run("export", build, src, stage, precision, **kernel)
            for file_name in TOKENIZER_FILES:
                if (src.path / file_name).is_file() and not (stage / file_name).exists():
                    shutil.copy2(src.path / file_name, stage / file_name)
            validation = None
            if validate:
                validation = stages.run("validate", _self_check, src, stage, precision, torch_model, cfg, threads)
                if not validation["passed"]:
                    if not allow_validation_failure:
                        raise ValidationFailed(
                            f"{name} {target}/{precision} failed its self-check: "
                            + "; ".join(validation["failures"])
                            + " (thresholds are configurable; --allow-validation-failure writes it anyway)"
                        )
                    validation["overridden"] = True
            manifest = stages.run("write", writer.commit, _manifest(src, stage, info, precision, target, name,
                                                                   source_name, validation))
    finally:
        stages.close()
    return ExportResult(out_dir=writer.out_dir, manifest=manifest, timings=stages.timings, notes=stages.notes)


def _encoder(tokenizer_path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def _self_check(src: HFSource, stage: Path, precision: str, torch_model, cfg: ValidationConfig, threads: int) -> dict:
    fixed = stage / "model.fixed.onnx"
    tokens = {key: src.tokenizer_config.get(key) for key in ("bos_token", "eos_token", "pad_token")}
    tokens = {k: (v.get("content") if isinstance(v, dict) else v) or "" for k, v in tokens.items()}
    return validate_decoder(
        stage / "model.onnx", torch_model, precision=precision, vocab=src.arch.vocab_size,
        encode=_encoder(src.path / "tokenizer.json"), context_length=src.arch.context_length, cfg=cfg,
        kv_heads=src.arch.num_kv_heads, head_dim=src.arch.head_dim, fixed_path=fixed if fixed.exists() else None,
        held_out=held_out_for(src.chat_template(), tokens, src.held_out_chats() or HELD_OUT_CHATS),
        threads=threads,
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
