import json

from tokenizers import Tokenizer


def test_tiny_model_dir_is_complete(tiny_models):
    path = tiny_models("llama")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (path / name).is_file(), name
    config = json.loads((path / "config.json").read_text())
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    ids = tok.encode("The blacksmith nods.").ids
    assert ids and max(ids) < config["vocab_size"]
    assert tok.decode(ids) == "The blacksmith nods."
