"""`check_package(dir)`: the whole contract of a package on disk, the one check behind `npcrt validate`,
the runtime's loader and the policy loader (so they accept exactly the same packages).

Order: the manifest (manifest.py); every listed file confined to the package, regular, and (by default)
matching its sha256; every ONNX graph's external data listed; the graphs' I/O names and opset agree with
the manifest; the portable profile's op rules. Nothing outside the package directory is opened: names are
checked lexically, then their real paths (symlinks followed) must stay under the package's real path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import contract as c
from .errors import PackageError
from .hashing import sha256_of
from .manifest import Manifest, read_manifest
from .onnx_graph import GraphSummary, read_graph
from .paths import name_problem, real_root, resolve_inside

MAX_PROBLEMS_SHOWN = 5  # portable-profile problems named in the one-line error


@dataclass
class CheckedPackage:
    """A package that passed `check_package`. `root` is its real path; `warnings` are not errors."""

    root: Path
    manifest: Manifest
    graphs: dict[str, GraphSummary] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    hashed: list[str] = field(default_factory=list)   # files whose sha256 was checked

    def path(self, name: str) -> Path:
        """The confined real path of a listed file."""
        return resolve_inside(self.root, name)


def _check_files(root: Path, manifest: Manifest, verify_hashes: bool) -> list[str]:
    hashed = []
    for name, expected in manifest.files.items():
        path = resolve_inside(root, name)
        if verify_hashes:
            actual = sha256_of(path)
            if actual != expected:
                raise PackageError(f"{name} does not match its sha256 in manifest.json (manifest {expected}, file "
                                   f"{actual}): the package is corrupt or was modified; re-export it",
                                   rule="hash", field="files")
            hashed.append(name)
    return hashed


def _check_external(name: str, graph: GraphSummary, manifest: Manifest) -> None:
    for location in graph.external_locations:
        problem = name_problem(location)
        if problem is not None:
            raise PackageError(f"{name} loads external data from {location!r}, which {problem}",
                               rule="path", field="files")
        if location not in manifest.files:
            raise PackageError(f"{name} loads external data from {location!r}, which manifest.json files does not "
                               "list (so its sha256 is not checked); re-export the package", rule="listing",
                               field="files")


def _check_io(name: str, graph: GraphSummary, inputs: tuple[str, ...], outputs: tuple[str, ...], where: str) -> None:
    if list(inputs) != graph.inputs:
        raise PackageError(f"{name} inputs {graph.inputs} differ from manifest.json {where}inputs {list(inputs)}",
                           rule="graph", field=f"{where}inputs")
    if list(outputs) != graph.outputs:
        raise PackageError(f"{name} outputs {graph.outputs} differ from manifest.json {where}outputs {list(outputs)}",
                           rule="graph", field=f"{where}outputs")


def portable_problems(name: str, graph: GraphSummary) -> list[str]:
    """One message per way the graph breaks the portable profile (Sentis / NNE)."""
    problems = []
    if graph.ai_onnx_opset != c.PORTABLE_OPSET:
        problems.append(f"{name}: ai.onnx opset {graph.ai_onnx_opset}, the portable profile needs {c.PORTABLE_OPSET}")
    extra = sorted(d for d in graph.opsets if d not in ("", "ai.onnx"))
    if extra:
        problems.append(f"{name}: imports non-default domains {extra}")
    for node in graph.nodes:
        label = f"{name}: node {node.name or '(unnamed)'!r} ({node.domain + '.' if node.domain else ''}{node.op_type}){node.where}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{label}: domain {node.domain!r} is not ai.onnx")
        elif node.op_type in c.PORTABLE_FORBIDDEN_OPS or node.op_type.startswith(c.PORTABLE_FORBIDDEN_PREFIXES):
            problems.append(f"{label}: op {node.op_type} is forbidden in the portable profile")
    for init, dtype in graph.initializer_types.items():
        if dtype not in c.PORTABLE_WEIGHT_TYPES:
            problems.append(f"{name}: initializer {init!r} has type {c.ONNX_TYPE_NAMES.get(dtype, dtype)} "
                            "(portable: fp32/fp16 weights only)")
    return problems


def unlisted_files(root: Path, manifest: Manifest) -> list[str]:
    """Files in the package directory that the manifest does not list (symlinks not followed)."""
    found = []
    for folder, dirs, names in os.walk(root):
        for file_name in names:
            rel = (Path(folder) / file_name).relative_to(root).as_posix()
            if rel != c.MANIFEST_FILE and rel not in manifest.files:
                found.append(rel)
    return sorted(found)


def _check_graphs(root: Path, manifest: Manifest) -> dict[str, GraphSummary]:
    graphs = {}
    for name in manifest.graph_files:
        graph = read_graph(resolve_inside(root, name), label=name)
        _check_external(name, graph, manifest)
        graphs[name] = graph
    main = graphs[c.MODEL_FILE]
    _check_io(c.MODEL_FILE, main, manifest.input_names, manifest.output_names, "")
    if main.ai_onnx_opset != manifest.opset:
        raise PackageError(f"model.onnx has ai.onnx opset {main.ai_onnx_opset}, manifest.json opset says "
                           f"{manifest.opset}", rule="graph", field="opset")
    for key, variant in manifest.variants.items():
        if variant.inputs and variant.outputs:
            _check_io(variant.file, graphs[variant.file], tuple(t.name for t in variant.inputs),
                      tuple(t.name for t in variant.outputs), "variants.")
    if manifest.target == "portable":
        problems = [p for name, graph in graphs.items() for p in portable_problems(name, graph)]
        if problems:
            shown = problems[:MAX_PROBLEMS_SHOWN]
            more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
            raise PackageError("; ".join(shown) + more, rule="graph", field="files")
    return graphs


def check_package(path: str | Path, *, verify_hashes: bool = True) -> CheckedPackage:
    """Check the package directory `path` against the contract; PackageError (one line, naming the package
    and the field) at the first problem. `verify_hashes=False` skips the sha256 comparison only."""
    shown = str(path)
    try:
        manifest = read_manifest(path)
        root = real_root(path)
        hashed = _check_files(root, manifest, verify_hashes)
        graphs = _check_graphs(root, manifest)
    except PackageError as exc:
        raise (exc if exc.package else exc.at(shown)) from exc.__cause__
    warnings = [f"{rel} is not listed in the manifest (loaders ignore it)" for rel in unlisted_files(root, manifest)]
    return CheckedPackage(root=root, manifest=manifest, graphs=graphs, warnings=warnings, hashed=hashed)


def is_package_dir(path: str | Path) -> bool:
    """True when `path` holds a manifest the reader accepts (what `npcrt export --force` may replace)."""
    try:
        read_manifest(path)
    except PackageError:
        return False
    return True
