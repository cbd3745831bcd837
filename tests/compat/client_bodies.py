"""Request bodies real game clients send in remote mode, copied field for field from their sources
(docs/compat.md cites the files). Values are the clients' defaults."""

# LLMUnity (undreamai/LLMUnity, Runtime/LLMCharacter.cs `GenerateRequest` + Runtime/LLMInterface.cs
# `ChatRequest`): Unity's JsonUtility writes every public field of the struct, so the body always holds them
# all; `logit_bias` is a Dictionary (JsonUtility skips it); `penalty_prompt` null is written as "".
LLMUNITY_COMPLETION = {
    "prompt": "<|system|>You are Bram, the blacksmith.<|end|><|user|>Hello!<|end|><|assistant|>",
    "id_slot": 0, "temperature": 0.2, "top_k": 40, "top_p": 0.9, "min_p": 0.05, "n_predict": 32, "n_keep": -1,
    "stream": False, "stop": ["<|end|>", "<|user|>"], "tfs_z": 1.0, "typical_p": 1.0, "repeat_penalty": 1.1,
    "repeat_last_n": 64, "penalize_nl": True, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "penalty_prompt": "", "mirostat": 0, "mirostat_tau": 5.0, "mirostat_eta": 0.1, "grammar": "", "seed": 0,
    "ignore_eos": False, "n_probs": 0, "cache_prompt": True, "messages": [],
}
# LLMUnity also calls POST /tokenize {"content": ...} (TokenizeRequest) to set n_keep, and the same
# /completion with "stream": true (it reads `content` of each `data:` line and stops at `"stop": true`).
LLMUNITY_TOKENIZE = {"content": "You are Bram, the blacksmith."}

# Llama-Unreal (getnamo/Llama-Unreal, Source/LlamaCore/Private/Remote/LlamaRemoteClient.cpp `BuildChatBody`,
# `WriteSamplingFields`, `WriteMessages`): POST /v1/chat/completions, always streaming; GET /health and
# GET /props first. Optional fields are written only when set; these are its defaults with cache + slot on.
LLAMA_UNREAL_CHAT = {
    "stream": True, "temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "mirostat": 0,
    "mirostat_tau": 5.0, "mirostat_eta": 0.1, "seed": 1234, "stop": ["<|end|>"], "cache_prompt": True,
    "id_slot": 1, "chat_template_kwargs": {"enable_thinking": False}, "reasoning_format": "none",
    "messages": [{"role": "system", "content": "You are Mira, a merchant."},
                 {"role": "user", "content": "What do you sell?"}],
}
# Its raw-completion mode: POST /v1/completions with "prompt" instead of "messages" (no chat template fields)
LLAMA_UNREAL_RAW = {
    "stream": True, "temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "mirostat": 0,
    "mirostat_tau": 5.0, "mirostat_eta": 0.1, "cache_prompt": True, "id_slot": 1,
    "prompt": "<|user|>What do you sell?<|end|><|assistant|>",
}
