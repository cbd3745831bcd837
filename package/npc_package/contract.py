"""Names and numbers of the model-package contract (docs/package.md), shared by every reader and writer."""

from __future__ import annotations

FORMAT_VERSION = 1                      # what writers write
SUPPORTED_FORMAT_VERSIONS = (1,)        # what readers read
MANIFEST_FILE = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20           # a manifest is text: names, numbers, a chat template

KINDS = ("causal-lm", "policy")
TARGETS = ("ort", "portable")
PRECISIONS = ("fp32", "fp16", "int8", "int4")
KV_LAYOUTS = ("shared-buffer", "growing", "fixed-capacity")

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
POLICY_SPEC_FILE = "policy.json"
GENAI_CONFIG_FILE = "genai_config.json"
FIXED_MODEL_FILE = "model.fixed.onnx"

# files a package of this kind / (target, kind) must list
KIND_FILES = {"causal-lm": (MODEL_FILE, TOKENIZER_FILE), "policy": (MODEL_FILE, POLICY_SPEC_FILE)}
TARGET_FILES = {("ort", "causal-lm"): (GENAI_CONFIG_FILE,), ("portable", "causal-lm"): (FIXED_MODEL_FILE,)}

# decoder I/O (Optimum / onnxruntime-genai convention)
INPUT_IDS, ATTENTION_MASK, POSITION_IDS, LOGITS = "input_ids", "attention_mask", "position_ids", "logits"
# policy I/O
POLICY_INPUTS = ("observations",)
POLICY_OUTPUTS = ("action_logits", "confidence")

# the portable profile (Unity Sentis, Unreal NNE)
PORTABLE_OPSET = 15
PORTABLE_PRECISIONS = ("fp32", "fp16")
PORTABLE_FORBIDDEN_OPS = frozenset({"If", "Loop", "Scan", "QuantizeLinear", "DequantizeLinear",
                                    "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"})
PORTABLE_FORBIDDEN_PREFIXES = ("QLinear",)
PORTABLE_WEIGHT_TYPES = frozenset({1, 10, 6, 7, 9})  # TensorProto float, float16, int32, int64, bool
ONNX_TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 9: "BOOL",
                   10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16", 22: "INT4", 21: "UINT4"}


def past_name(layer: int, which: str) -> str:
    return f"past_key_values.{layer}.{which}"


def present_name(layer: int, which: str) -> str:
    return f"present.{layer}.{which}"


def decoder_inputs(num_layers: int) -> list[str]:
    """Inputs every causal-lm graph has (position_ids is optional)."""
    return [INPUT_IDS, ATTENTION_MASK] + [past_name(i, w) for i in range(num_layers) for w in ("key", "value")]


def decoder_outputs(num_layers: int) -> list[str]:
    return [LOGITS] + [present_name(i, w) for i in range(num_layers) for w in ("key", "value")]
