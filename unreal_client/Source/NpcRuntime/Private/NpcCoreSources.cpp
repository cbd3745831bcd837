// Compiles the engine-agnostic core (unreal_client/core/src) into this module, so the plugin needs no
// separately built library for its pure logic (slicer, session book, JSON, manifest, fixed KV cache,
// the StepStream event rule).
// The gRPC client (npc_client.cpp) comes from the prebuilt core library when NPC_WITH_GRPC is 1;
// otherwise a stub answers UNIMPLEMENTED (the local brain still works).
#include "CoreMinimal.h"

THIRD_PARTY_INCLUDES_START
#include "status.cpp"
#include "frame_budget_slicer.cpp"
#include "session_book.cpp"
#include "mini_json.cpp"
#include "model_manifest.cpp"
#include "fixed_kv_cache.cpp"
#include "bpe_tokenizer.cpp"
#include "step_stream.cpp"
#if !NPC_WITH_GRPC
#include "npc_client_stub.cpp"
#endif
THIRD_PARTY_INCLUDES_END
