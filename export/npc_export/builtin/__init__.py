"""The two built-in models, trained by the project's own seeded scripts, weights committed:

- `npc-dialogue`: a Llama-shaped decoder (~4.7M parameters) that answers in character, starting every
  reply with an action tag: `[warn] Put that away, stranger.` (a normal Hugging Face model directory);
- `npc-policy`: a small MLP from named observation features to action logits and a confidence.

Retrain both with `python -m npc_export.builtin.train` (see docs/builtin-models.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .corpus import ACTIONS, ASSISTANT, BOS, END, SYSTEM, USER, system_text

if TYPE_CHECKING:  # torch is only imported when the policy is loaded
    import torch

BUILTIN_MODELS: tuple[str, ...] = ("npc-dialogue", "npc-policy")
WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"

__all__ = ["ACTIONS", "BUILTIN_MODELS", "WEIGHTS_DIR", "dialogue_dir", "format_prompt", "load_policy",
           "policy_dir"]


def dialogue_dir() -> Path:
    """The Hugging Face directory of npc-dialogue (config.json, model.safetensors, tokenizer files)."""
    directory = WEIGHTS_DIR / "npc-dialogue"
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"npc-dialogue weights are missing from {directory} ({', '.join(missing)}); "
            "run `python -m npc_export.builtin.train --only dialogue` to train them")
    return directory


def policy_dir() -> Path:
    return WEIGHTS_DIR / "npc-policy"


def load_policy() -> tuple["torch.nn.Module", dict]:
    """(module in eval mode, policy.json contents). The module maps raw observations float32
    [batch, num_features] to (action_logits [batch, num_actions], confidence [batch])."""
    from .policy import load_policy_from

    return load_policy_from(policy_dir())


def format_prompt(persona: str, situation: str, mood: str, user: str) -> str:
    """The prompt up to `<|assistant|>`, identical to the chat template with add_generation_prompt.

    persona: "You are Bram, the village guard. Traits: stern, loyal."
    situation: "the player is near the gate at night."
    mood: "suspicious"; user: what the player says, or an event ("The player steals an apple.").
    """
    system = system_text(persona, situation, mood)
    return f"{BOS}{SYSTEM}{system}{END}{USER}{user.strip()}{END}{ASSISTANT}"
