"""What a package check needs from an ONNX file, read from the protobuf wire format with the standard
library alone (no `onnx`, no weights loaded): graph input / output names, opset imports, the ops used and
the data types of initializers, and every external-data `location` any tensor points at (initializers,
sparse initializers, Constant attributes, subgraphs, functions): the files ONNX Runtime will open.

Only the fields below are decoded; everything else (weights in `raw_data` included) is skipped by length.
Field numbers are onnx.proto3's (onnx/onnx.proto), stable since IR version 3.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PackageError

MAX_DEPTH = 64  # nesting of graphs / attributes; a hostile file cannot recurse without bound

# ModelProto
_M_OPSET, _M_GRAPH, _M_FUNCTIONS = 8, 7, 25
# GraphProto
_G_NODE, _G_INITIALIZER, _G_SPARSE_INIT, _G_INPUT, _G_OUTPUT = 1, 5, 15, 11, 12
# NodeProto
_N_NAME, _N_OP_TYPE, _N_ATTRIBUTE, _N_DOMAIN = 3, 4, 5, 7
# AttributeProto: t, g, tensors, graphs, sparse_tensor, sparse_tensors
_A_T, _A_G, _A_TENSORS, _A_GRAPHS, _A_SPARSE, _A_SPARSES = 5, 6, 10, 11, 22, 23
# TensorProto
_T_DATA_TYPE, _T_NAME, _T_EXTERNAL_DATA = 2, 8, 13
# SparseTensorProto: values, indices
_S_VALUES, _S_INDICES = 1, 2
# FunctionProto
_F_NODE = 7


@dataclass
class Node:
    name: str
    op_type: str
    domain: str
    where: str  # "" for the main graph, else " in subgraph of 'NODE'"


@dataclass
class GraphSummary:
    inputs: list[str] = field(default_factory=list)            # graph inputs that are not initializers
    outputs: list[str] = field(default_factory=list)
    opsets: dict[str, int] = field(default_factory=dict)       # domain ("" = ai.onnx) -> version
    nodes: list[Node] = field(default_factory=list)
    initializer_types: dict[str, int] = field(default_factory=dict)  # name -> TensorProto data_type
    external_locations: list[str] = field(default_factory=list)      # as written, in first-seen order

    @property
    def ai_onnx_opset(self) -> int | None:
        for domain in ("", "ai.onnx"):
            if domain in self.opsets:
                return self.opsets[domain]
        return None


class _Malformed(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value) of one message; value is an int, or (start, end) for length-delimited."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + length), pos + length
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        if pos > end:
            raise _Malformed("field runs past its message")
        yield number, wire, value


def _text(buf, span) -> str:
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed("a name is not UTF-8") from exc


class _Reader:
    def __init__(self, buf):
        self.buf = buf
        self.out = GraphSummary()

    def _spans(self, span, wanted: int):
        return [v for n, w, v in _fields(self.buf, *span) if n == wanted and w == 2]

    def tensor(self, span, *, record_type: bool = False) -> str:
        name, dtype = "", None
        for number, wire, value in _fields(self.buf, *span):
            if number == _T_NAME and wire == 2:
                name = _text(self.buf, value)
            elif number == _T_DATA_TYPE and wire == 0:
                dtype = value
            elif number == _T_EXTERNAL_DATA and wire == 2:
                key = val = None
                for n, w, v in _fields(self.buf, *value):
                    if w == 2 and n == 1:
                        key = _text(self.buf, v)
                    elif w == 2 and n == 2:
                        val = _text(self.buf, v)
                if key == "location" and val is not None and val not in self.out.external_locations:
                    self.out.external_locations.append(val)
        if record_type and dtype is not None:
            self.out.initializer_types[name] = dtype
        return name

    def sparse(self, span) -> None:
        for sub in self._spans(span, _S_VALUES) + self._spans(span, _S_INDICES):
            self.tensor(sub)

    def node(self, span, where: str, depth: int) -> None:
        name = op_type = domain = ""
        attributes = []
        for number, wire, value in _fields(self.buf, *span):
            if wire != 2:
                continue
            if number == _N_NAME:
                name = _text(self.buf, value)
            elif number == _N_OP_TYPE:
                op_type = _text(self.buf, value)
            elif number == _N_DOMAIN:
                domain = _text(self.buf, value)
            elif number == _N_ATTRIBUTE:
                attributes.append(value)
        self.out.nodes.append(Node(name=name, op_type=op_type, domain=domain, where=where))
        inner = f" in subgraph of {name!r}"
        for attr in attributes:
            for number, wire, value in _fields(self.buf, *attr):
                if wire != 2:
                    continue
                if number in (_A_T, _A_TENSORS):
                    self.tensor(value)
                elif number in (_A_SPARSE, _A_SPARSES):
                    self.sparse(value)
                elif number in (_A_G, _A_GRAPHS):
                    self.graph(value, inner, depth + 1, main=False)

    def graph(self, span, where: str, depth: int, *, main: bool) -> None:
        if depth > MAX_DEPTH:
            raise _Malformed(f"graphs nested deeper than {MAX_DEPTH}")
        inputs, initializers = [], set()
        for number, wire, value in _fields(self.buf, *span):
            if wire != 2:
                continue
            if number == _G_NODE:
                self.node(value, where, depth)
            elif number == _G_INITIALIZER:
                initializers.add(self.tensor(value, record_type=True))
            elif number == _G_SPARSE_INIT:
                self.sparse(value)
            elif main and number in (_G_INPUT, _G_OUTPUT):
                names = [_text(self.buf, v) for n, w, v in _fields(self.buf, *value) if n == 1 and w == 2]
                (inputs if number == _G_INPUT else self.out.outputs).append(names[0] if names else "")
        if main:
            self.out.inputs = [n for n in inputs if n not in initializers]

    def model(self, size: int) -> GraphSummary:
        graphs = 0
        for number, wire, value in _fields(self.buf, 0, size):
            if wire != 2:
                continue
            if number == _M_OPSET:
                domain, version = "", 0
                for n, w, v in _fields(self.buf, *value):
                    if n == 1 and w == 2:
                        domain = _text(self.buf, v)
                    elif n == 2 and w == 0:
                        version = v
                self.out.opsets[domain] = version
            elif number == _M_GRAPH:
                graphs += 1
                self.graph(value, "", 0, main=True)
            elif number == _M_FUNCTIONS:
                for sub in self._spans(value, _F_NODE):
                    self.node(sub, " in a model function", 1)
        if graphs != 1:
            raise _Malformed("no graph" if graphs == 0 else "more than one graph")
        return self.out


def read_graph(path: str | Path, *, label: str | None = None) -> GraphSummary:
    """The GraphSummary of one ONNX file; PackageError(rule="graph") when it is not a readable ONNX model."""
    label = label or Path(path).name
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            if size == 0:
                raise _Malformed("the file is empty")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return _Reader(view).model(size)
                finally:
                    view.release()  # before the map closes
    except _Malformed as exc:
        raise PackageError(f"{label} is not a valid ONNX model ({exc})", rule="graph", field="files") from exc
    except OSError as exc:
        raise PackageError(f"{label} cannot be read ({exc.strerror or exc})", rule="file", field="files") from exc
