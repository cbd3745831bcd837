// Conversions between the plain npc:: types and the generated npc.v1 protobuf messages.
// Internal to the core (and its tests, which compare the serialized bytes with the shared vectors).
#pragma once

#include "npc/npc_types.h"
#include "npc/step_stream.h"
#include "npc_proto/v1/agent.pb.h"
#include "npc_proto/v1/runtime.pb.h"

namespace npc {
namespace convert {

void ToProto(const SamplingOptions& in, ::npc::v1::SamplingParams* out);
void ToProto(const ConstraintOptions& in, ::npc::v1::Constraint* out);
void ToProto(const OpenSessionOptions& in, ::npc::v1::OpenSessionRequest* out);
void ToProto(const TickEntryOptions& in, ::npc::v1::TickEntry* out);
void ToProto(const std::vector<TickEntryOptions>& in, ::npc::v1::TickRequest* out);
void ToProto(const GenerateOptions& in, ::npc::v1::GenerateRequest* out);
void ToProto(const RegisterNpcOptions& in, ::npc::v1::RegisterNpcRequest* out);
void ToProto(const StepOptions& in, ::npc::v1::StepRequest* out);
void ToProto(const RecallOptions& in, ::npc::v1::RecallMemoriesRequest* out);
void ToProto(const RestoreSessionOptions& in, ::npc::v1::RestoreSessionRequest* out);

void FromProto(const ::npc::v1::HandshakeResponse& in, HandshakeInfo* out);
void FromProto(const ::npc::v1::ModelInfo& in, ModelInfo* out);
void FromProto(const ::npc::v1::OpenSessionResponse& in, OpenedSession* out);
void FromProto(const ::npc::v1::TickResult& in, TickResultInfo* out);
void FromProto(const ::npc::v1::TickResponse& in, TickOutcome* out);
void FromProto(const ::npc::v1::GenerateChunk& in, GenerateChunkInfo* out);
void FromProto(const ::npc::v1::RegisterNpcResponse& in, RegisteredNpc* out);
void FromProto(const ::npc::v1::Decision& in, DecisionInfo* out);
void FromProto(const ::npc::v1::ActionChosen& in, ActionChosenInfo* out);
void FromProto(const ::npc::v1::DialogueDelta& in, DialogueDeltaInfo* out);
void FromProto(const ::npc::v1::Memory& in, MemoryInfo* out);
void FromProto(const ::npc::v1::SessionSnapshot& in, SessionSnapshotInfo* out);

// Hands one StepStream chunk to the assembler (a chunk of a kind this contract does not define is skipped).
Status Feed(const ::npc::v1::StepChunk& chunk, StepStreamAssembler* assembler);

}  // namespace convert
}  // namespace npc
