"""Which precision to ship for npc-dialogue: greedy replies of fp16 / int8 packages against fp32, measured.

    python tests/install/precision_agreement.py DIR_FP32 DIR_FP16 DIR_INT8 [--prompts 300]

Prompts are held-out samples of the training corpus (`generate_corpus(...).heldout`, chats the model
never saw), in the model's own chat format. For each package: greedy decoding (ONNX Runtime, KV cache)
until <|end|> / </s> or 48 tokens, then
  * teacher-forced agreement: argmax of the package at each position of the fp32 reply (end token
    included), as a fraction of those tokens: the reply-only counterpart of the exporter's figure,
    which also scores 128 forced tokens after the reply's end, where a tiny model's argmax is noise;
  * exact: replies identical to fp32's;
  * action accuracy / well-formed: the reply's [action] tag is the corpus rule's / the reply parses.
Needs the `export` extra (the corpus lives in npc_export.builtin). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _decoder(pkg: Path):
    from npc_export.runner import GrowingDecoder

    arch = json.loads((pkg / "manifest.json").read_text())["architecture"]
    return GrowingDecoder(pkg / "model.onnx", kv_heads=arch["num_kv_heads"], head_dim=arch["head_dim"], threads=1)


def _greedy(dec, prompt: list[int], stops: set[int], limit: int) -> list[int]:
    logits, past = dec.step(np.array([prompt]))
    out: list[int] = []
    while len(out) < limit:
        tok = int(logits[0, -1].argmax())
        out.append(tok)
        if tok in stops:
            break
        logits, past = dec.step(np.array([[tok]]), past)
    return out


def measure(packages: list[Path], *, prompts: int = 300, limit: int = 48) -> dict:
    from tokenizers import Tokenizer

    from npc_export.builtin.corpus import generate_corpus
    from npc_export.builtin.train_dialogue import parse_reply

    tok = Tokenizer.from_file(str(packages[0] / "tokenizer.json"))
    stops = {tok.token_to_id("<|end|>"), tok.token_to_id("</s>")}
    samples = list(generate_corpus(seed=0, num_train=0, num_heldout=prompts).heldout)[:prompts]
    decs = {p: _decoder(p) for p in packages}
    ref_pkg = packages[0]
    stats = {str(p): {"agree": 0, "tokens": 0, "exact": 0, "action_ok": 0, "well_formed": 0} for p in packages}
    examples = []
    for i, sample in enumerate(samples):
        prompt = tok.encode(sample.prompt, add_special_tokens=False).ids
        ref = _greedy(decs[ref_pkg], prompt, stops, limit)
        row = {}
        for p, dec in decs.items():
            got = ref if p == ref_pkg else _greedy(dec, prompt, stops, limit)
            logits, _ = dec.step(np.array([prompt + ref[:-1]]))
            pred = logits[0, len(prompt) - 1:].argmax(-1)
            s = stats[str(p)]
            s["agree"] += int((pred == np.array(ref)).sum())
            s["tokens"] += len(ref)
            s["exact"] += got == ref
            text = tok.decode([t for t in got if t not in stops], skip_special_tokens=True)
            action, line = parse_reply(text)
            s["well_formed"] += action is not None and bool(line)
            s["action_ok"] += action == sample.action
            row[p.name] = text
        if i < 6:
            examples.append({"user": sample.user, **row})
    n = len(samples)
    return {
        "prompts": n,
        "reference": str(ref_pkg),
        "packages": {p: {"teacher_forced_agreement": round(s["agree"] / s["tokens"], 4), "tokens": s["tokens"],
                         "exact_reply_match": round(s["exact"] / n, 4), "action_accuracy": round(s["action_ok"] / n, 4),
                         "well_formed": round(s["well_formed"] / n, 4)} for p, s in stats.items()},
        "examples": examples,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="+", type=Path, help="fp32 package first (the reference), then others")
    ap.add_argument("--prompts", type=int, default=300)
    args = ap.parse_args(argv)
    json.dump(measure(args.packages, prompts=args.prompts), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
