"""Shared fixtures: tiny random-weight HF models (built once per session) and a fast self-check."""

from __future__ import annotations

import pytest

from npc_export.validation import Thresholds, ValidationConfig
from tests.helpers.tiny_models import make_tiny_hf_model

# Random tiny models have near-flat logits, so quantized greedy agreement is low by nature; the
# thresholds here check the plumbing, the defaults (Thresholds()) are for real models.
FAST_VALIDATION = ValidationConfig(
    generate_tokens=24,
    thresholds=Thresholds(min_greedy_agreement={"fp16": 0.9, "int8": 0.8, "int4": 0.4},
                          max_perplexity_delta_ratio={"fp16": 0.02, "int8": 0.05, "int4": 0.25}),
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    cache: dict[str, object] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = make_tiny_hf_model(root, family)
        return cache[family]

    return get


@pytest.fixture
def fast_validation():
    return FAST_VALIDATION


@pytest.fixture(scope="session")
def smollm_like(tmp_path_factory):
    """SmolLM-style Llama: tied embeddings, 3 query heads over 1 kv head, head_dim 32."""
    return make_tiny_hf_model(tmp_path_factory.mktemp("smollm"), "llama", name="tiny-smollm", hidden_size=96,
                              intermediate_size=192, num_attention_heads=3, num_key_value_heads=1, head_dim=32,
                              tie_word_embeddings=True)
