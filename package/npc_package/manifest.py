"""The typed manifest: `parse_manifest(obj)` / `read_manifest(dir)` -> `Manifest`.

Reading a manifest touches no other file: JSON, the schema (schema.py), then the rules a schema cannot say
(required files listed, decoder / policy I/O names). Files, hashes and graphs are check.py's business.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import contract as c
from .errors import PackageError
from .schema import validate


@dataclass(frozen=True)
class Architecture:
    """Shape numbers of a decoder (`architecture`)."""

    family: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int


@dataclass(frozen=True)
class KvCache:
    layout: str        # shared-buffer | growing | fixed-capacity
    capacity: int      # max positions
    dtype: str         # float32 | float16


@dataclass(frozen=True)
class SpecialTokens:
    bos: int | None = None
    eos: tuple[int, ...] = ()
    pad: int | None = None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str | None = None
    shape: tuple[int | str, ...] | None = None   # str: a named (symbolic) dimension


@dataclass(frozen=True)
class Variant:
    file: str
    layout: str | None
    capacity: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class PolicyInfo:
    num_features: int | None
    num_actions: int | None


@dataclass(frozen=True)
class Manifest:
    format_version: int
    kind: str
    name: str
    precision: str
    target: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: Mapping[str, str]                     # relative file name -> sha256 (lowercase hex)
    architecture: Architecture | None = None     # causal-lm
    kv_cache: KvCache | None = None              # causal-lm
    special_tokens: SpecialTokens = SpecialTokens()
    chat_template: str | None = None
    source: str | None = None
    quantization: dict | None = None
    validation: dict | None = None
    policy: PolicyInfo | None = None
    variants: Mapping[str, Variant] = field(default_factory=dict)
    exporter_version: str | None = None
    created_unix: int | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)   # the parsed JSON, extra fields kept

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def graph_files(self) -> tuple[str, ...]:
        """The ONNX graphs of the package: model.onnx, then each variant's file."""
        return (c.MODEL_FILE,) + tuple(v.file for v in self.variants.values() if v.file != c.MODEL_FILE)


def _tensors(items: list) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=t["name"], dtype=t.get("dtype"),
                            shape=tuple(_int_or_str(d) for d in t["shape"]) if t.get("shape") is not None else None)
                 for t in items)


def _int_or_str(value: Any) -> int | str:
    return value if isinstance(value, str) else int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _require_listed(files: Mapping[str, str], name: str, why: str, field: str = "files") -> None:
    if name not in files:
        raise PackageError(f"manifest.json {field}: {name} is not listed ({why}); every file a loader reads is "
                           "listed with its sha256", rule="listing", field=field)


def _check_listing(m: dict) -> None:
    files, kind, target = m["files"], m["kind"], m["target"]
    for name in c.KIND_FILES[kind]:
        _require_listed(files, name, f"a {kind} package needs it")
    for name in c.TARGET_FILES.get((target, kind), ()):
        _require_listed(files, name, f"a {target} {kind} package needs it")
    for variant in (m.get("variants") or {}).values():
        _require_listed(files, variant["file"], "a variant names it", field="variants")


def _missing(names: list[str], wanted) -> str | None:
    """The first of `wanted` (an iterable, possibly long) not in `names`, or None."""
    have = set(names)
    return next((n for n in wanted if n not in have), None)


def _layer_names(num_layers: int, name_of, limit: int):
    # lazily: a hostile num_layers must not build a huge list; a missing name shows up within len(names) + 1
    for i in range(min(num_layers, limit + 1)):
        for which in ("key", "value"):
            yield name_of(i, which)


def _check_io(m: dict) -> None:
    inputs = [t["name"] for t in m["inputs"]]
    outputs = [t["name"] for t in m["outputs"]]
    if m["kind"] == "causal-lm":
        layers = int(m["architecture"]["num_layers"])
        wanted_in = [c.INPUT_IDS, c.ATTENTION_MASK, *_layer_names(layers, c.past_name, len(inputs))]
        wanted_out = [c.LOGITS, *_layer_names(layers, c.present_name, len(outputs))]
        what = f"a causal-lm with architecture.num_layers={layers} needs"
    else:
        wanted_in, wanted_out, what = list(c.POLICY_INPUTS), list(c.POLICY_OUTPUTS), "a policy needs"
    for field_name, names, wanted in (("inputs", inputs, wanted_in), ("outputs", outputs, wanted_out)):
        absent = _missing(names, wanted)
        if absent is not None:
            raise PackageError(f"manifest.json {field_name}: lacks {absent!r} ({what} "
                               f"{', '.join(wanted[:4])}{', ...' if len(wanted) > 4 else ''}; see docs/package.md)",
                               rule="io", field=field_name)
    if m["kind"] == "policy" and (inputs != list(c.POLICY_INPUTS) or outputs != list(c.POLICY_OUTPUTS)):
        field_name = "inputs" if inputs != list(c.POLICY_INPUTS) else "outputs"
        raise PackageError(f"manifest.json {field_name}: a policy's I/O is exactly observations -> "
                           f"action_logits, confidence (got {inputs} -> {outputs})", rule="io", field=field_name)


def _check_version(obj: dict) -> None:
    if "format_version" not in obj:
        raise PackageError("manifest.json format_version: is required but absent", rule="missing", field="format_version")
    version = obj["format_version"]
    if isinstance(version, bool) or not (isinstance(version, int) or (isinstance(version, float) and version.is_integer())):
        raise PackageError(f"manifest.json format_version: must be integer, got {version!r}", rule="type",
                           field="format_version")
    if int(version) not in c.SUPPORTED_FORMAT_VERSIONS:
        raise PackageError(f"manifest.json format_version: {int(version)} is not supported (this reader reads "
                           f"{', '.join(map(str, c.SUPPORTED_FORMAT_VERSIONS))}); re-export the package with a "
                           "matching exporter or update the reader", rule="version", field="format_version")


def parse_manifest(obj: Any) -> Manifest:
    """A Manifest from parsed JSON; PackageError naming the field when it breaks the contract."""
    if not isinstance(obj, dict):
        raise PackageError("manifest.json must hold a JSON object", rule="json")
    _check_version(obj)   # first: a newer format may differ anywhere else
    validate(obj)
    if obj["target"] == "portable" and obj["precision"] not in c.PORTABLE_PRECISIONS:
        raise PackageError(f"manifest.json precision: {obj['precision']!r} with target 'portable' (portable packages "
                           "hold fp32 or fp16 weights; Sentis / NNE quantize themselves)", rule="value", field="precision")
    _check_listing(obj)
    _check_io(obj)
    arch = kv = None
    if obj["kind"] == "causal-lm":
        a = obj["architecture"]
        arch = Architecture(family=str(a.get("family") or "llama"),
                            **{k: int(a[k]) for k in ("num_layers", "num_heads", "num_kv_heads", "head_dim",
                                                       "hidden_size", "vocab_size", "context_length")})
        k = obj["kv_cache"]
        kv = KvCache(layout=k["layout"], capacity=int(k.get("capacity") or arch.context_length),
                     dtype=k.get("dtype") or "float32")
    special = obj.get("special_tokens") or {}
    eos = special.get("eos")
    eos = () if eos is None else tuple(int(e) for e in (eos if isinstance(eos, list) else [eos]))
    policy = obj.get("policy")
    variants = {name: Variant(file=v["file"], layout=v.get("layout"), capacity=_opt_int(v.get("capacity")),
                              inputs=_tensors(v.get("inputs") or []), outputs=_tensors(v.get("outputs") or []))
                for name, v in (obj.get("variants") or {}).items()}
    return Manifest(
        format_version=int(obj["format_version"]), kind=obj["kind"], name=obj["name"], precision=obj["precision"],
        target=obj["target"], opset=int(obj["opset"]), inputs=_tensors(obj["inputs"]),
        outputs=_tensors(obj["outputs"]), files=dict(obj["files"]), architecture=arch, kv_cache=kv,
        special_tokens=SpecialTokens(bos=_opt_int(special.get("bos")), eos=eos, pad=_opt_int(special.get("pad"))),
        chat_template=obj.get("chat_template"), source=obj.get("source"), quantization=obj.get("quantization"),
        validation=obj.get("validation"),
        policy=None if policy is None else PolicyInfo(num_features=_opt_int(policy.get("num_features")),
                                                      num_actions=_opt_int(policy.get("num_actions"))),
        variants=variants, exporter_version=obj.get("exporter_version"),
        created_unix=_opt_int(obj.get("created_unix")), raw=obj,
    )


def parse_manifest_text(text: str | bytes) -> Manifest:
    """A Manifest from manifest.json's text (rule "json" when it is not JSON)."""
    if len(text) > c.MAX_MANIFEST_BYTES:
        raise PackageError(f"manifest.json is larger than {c.MAX_MANIFEST_BYTES >> 20} MiB", rule="json")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackageError(f"manifest.json is not valid JSON ({exc})", rule="json") from exc
    return parse_manifest(obj)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a number")
    return value


def read_manifest_text(root: str | Path) -> bytes:
    """The bytes of `root/manifest.json`, bounded; PackageError(rule="json") when absent or unreadable."""
    path = Path(root) / c.MANIFEST_FILE
    if not Path(root).is_dir():
        raise PackageError(f"{root} is not a directory", rule="json")
    if os.path.islink(path) or not path.is_file():
        what = "a symlink" if os.path.islink(path) else "absent"
        raise PackageError(f"not a model package: {c.MANIFEST_FILE} is {what}; export one with `npcrt export`",
                           rule="json")
    try:
        with open(path, "rb") as handle:
            data = handle.read(c.MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise PackageError(f"{c.MANIFEST_FILE} cannot be read ({exc.strerror or exc})", rule="json") from exc
    return data


def read_manifest(root: str | Path) -> Manifest:
    """The typed manifest of the package directory `root` (reads manifest.json only); PackageError naming
    the package directory and the field otherwise."""
    try:
        return parse_manifest_text(read_manifest_text(root))
    except PackageError as exc:
        raise exc.at(str(root)) from exc.__cause__
