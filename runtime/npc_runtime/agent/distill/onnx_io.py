"""The policy graph as ONNX bytes, written and read with the protobuf wire format directly.

Why not the `onnx` package: it is in the exporter extra, and distillation has to run on the light
runtime install (`make demo`: numpy + onnxruntime). The policy graph is eleven plain ai.onnx ops, so the
few ONNX messages it needs are encoded here by field number (onnx/onnx.proto3); ONNX Runtime loading the
result, and the parity check against the numpy forward pass, are the proof that it is well-formed.

Graph (opset 15, default domain only: valid for both the `ort` and the `portable` profiles):
    observations -Sub offset -Div scale -Max lo -Min hi -> Gemm(transB=1) -> Relu -> ... -> Gemm
    -> action_logits -Softmax(axis=1)-> ReduceMax(axes=[1], keepdims=0) -> confidence
Initializer names follow the PyTorch export (`offset`, `scale`, `lo`, `hi`, `mlp.{2i}.weight|bias`), so the
reader takes the exporter's packages and ours alike.
"""

from __future__ import annotations

import struct

import numpy as np

from npc_runtime.agent.distill.mlp import PolicyWeights
from npc_runtime.errors import ModelPackageError

OPSET = 15
IR_VERSION = 8            # the IR version that goes with opset 15
FLOAT = 1                 # TensorProto.DataType.FLOAT
_ATTR_INT, _ATTR_INTS = 2, 7


# ---- encoding ------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1          # negative int64 values: two's complement, 10 bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(field, 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    a = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, FLOAT) + _bytes(8, name) + _bytes(9, a.tobytes())


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, FLOAT) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attr_int(name: str, value: int) -> bytes:
    return _bytes(1, name) + _int(3, value) + _int(20, _ATTR_INT)


def _attr_ints(name: str, values: list[int]) -> bytes:
    return _bytes(1, name) + b"".join(_int(8, v) for v in values) + _int(20, _ATTR_INTS)


def _node(op: str, inputs: list[str], outputs: list[str], name: str, attrs: list[bytes] = ()) -> bytes:
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(3, name)
            + _bytes(4, op) + b"".join(_bytes(5, a) for a in attrs))


def policy_onnx(w: PolicyWeights, *, producer: str = "npcrt-distill", version: str = "0.1.0") -> bytes:
    """The serialized ModelProto of the policy graph with weights `w`."""
    nodes = [_node("Sub", ["observations", "offset"], ["n_sub"], "normalise_sub"),
             _node("Div", ["n_sub", "scale"], ["n_div"], "normalise_div"),
             _node("Max", ["n_div", "lo"], ["n_max"], "normalise_lo"),
             _node("Min", ["n_max", "hi"], ["h0"], "normalise_hi")]
    inits = [_tensor("offset", w.offset), _tensor("scale", w.scale), _tensor("lo", w.lo), _tensor("hi", w.hi)]
    h = "h0"
    last = len(w.weights) - 1
    for i, (wi, bi) in enumerate(zip(w.weights, w.biases)):
        k = 2 * i
        inits += [_tensor(f"mlp.{k}.weight", wi), _tensor(f"mlp.{k}.bias", bi)]
        out = "action_logits" if i == last else f"z{i}"
        nodes.append(_node("Gemm", [h, f"mlp.{k}.weight", f"mlp.{k}.bias"], [out], f"linear{i}",
                           [_attr_int("transB", 1)]))
        if i < last:
            nodes.append(_node("Relu", [out], [f"h{i + 1}"], f"relu{i}"))
            h = f"h{i + 1}"
    nodes += [_node("Softmax", ["action_logits"], ["probs"], "softmax", [_attr_int("axis", 1)]),
              _node("ReduceMax", ["probs"], ["confidence"], "confidence", [_attr_ints("axes", [1]),
                                                                             _attr_int("keepdims", 0)])]
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "npc-policy")
             + b"".join(_bytes(5, t) for t in inits)
             + _bytes(11, _value_info("observations", ["batch", w.num_features]))
             + _bytes(12, _value_info("action_logits", ["batch", w.num_actions]))
             + _bytes(12, _value_info("confidence", ["batch"])))
    opset = _bytes(1, "") + _int(2, OPSET)
    return (_int(1, IR_VERSION) + _bytes(2, producer) + _bytes(3, version) + _bytes(7, graph)
            + _bytes(8, opset))


# ---- decoding (initializers only) ----------------------------------------------------------------------
def _fields(buf: bytes):
    """(field number, wire type, value) for each field of one message; value: int or bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            length, i = _read_varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > n:
            raise ValueError("truncated message")
        yield field, wire, value


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _read_tensor(buf: bytes) -> tuple[str, np.ndarray]:
    name, dims, dtype, raw, floats = "", [], FLOAT, None, []
    for field, wire, value in _fields(buf):
        if field == 1:
            if wire == 2:   # packed
                j = 0
                while j < len(value):
                    d, j = _read_varint(value, j)
                    dims.append(d)
            else:
                dims.append(value)
        elif field == 2:
            dtype = value
        elif field == 8:
            name = value.decode()
        elif field == 9:
            raw = value
        elif field == 4:
            floats.append(value if wire == 2 else struct.pack("<f", value))
    if dtype != FLOAT:
        raise ValueError(f"initializer {name!r} is not float32 (data type {dtype})")
    data = np.frombuffer(raw if raw is not None else b"".join(floats), dtype="<f4")
    return name, data.reshape(dims).astype(np.float32)


def read_policy_weights(onnx_bytes: bytes, where: str = "model.onnx") -> PolicyWeights:
    """The weights of a policy graph (the exporter's or ours). ModelPackageError if it is not one."""
    try:
        graph = next(v for f, _w, v in _fields(onnx_bytes) if f == 7)
        tensors = dict(_read_tensor(v) for f, _w, v in _fields(graph) if f == 5)
        layers = sorted(int(k.split(".")[1]) for k in tensors if k.startswith("mlp.") and k.endswith(".weight"))
        weights = [tensors[f"mlp.{k}.weight"] for k in layers]
        biases = [tensors[f"mlp.{k}.bias"] for k in layers]
        w = PolicyWeights(tensors["offset"], tensors["scale"], tensors["lo"], tensors["hi"], weights, biases)
    except (StopIteration, KeyError, ValueError, IndexError) as exc:
        raise ModelPackageError(f"{where}: not a policy graph this runtime can fine-tune "
                                f"(needs offset/scale/lo/hi and mlp.N.weight/bias float32 initializers): "
                                f"{type(exc).__name__}: {exc}") from exc
    if not weights or any(wi.ndim != 2 for wi in weights):
        raise ModelPackageError(f"{where}: the policy graph has no 2-D mlp.N.weight layers")
    return w
