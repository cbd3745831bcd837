// NpcRuntimeClient for builds without gRPC (the Unreal module when NPC_CORE_SDK is not set): every call
// answers UNIMPLEMENTED with what to do, so the game still runs (local brain, FSM) and says why the
// server connection is off.
#include <map>
#include <memory>
#include <mutex>

#include "npc/npc_client.h"

namespace npc {

namespace {
Status NoGrpc() {
  return Status{StatusCode::kUnimplemented,
                "this build has no gRPC client: build unreal_client/core with CMake for this platform and set "
                "NPC_CORE_SDK (see unreal_client/README.md)"};
}
}  // namespace

struct NpcRuntimeClient::Impl {
  ClientOptions options;
  mutable std::mutex mutex;
  std::map<std::string, std::string> session_npc;  // kept as the real client does (nothing is ever sent)
};

NpcRuntimeClient::NpcRuntimeClient(const ClientOptions& options) : impl_(new Impl) { impl_->options = options; }
NpcRuntimeClient::~NpcRuntimeClient() = default;
const ClientOptions& NpcRuntimeClient::options() const { return impl_->options; }
Status NpcRuntimeClient::Handshake(HandshakeInfo*) { return NoGrpc(); }
Status NpcRuntimeClient::ListModels(std::vector<ModelInfo>*) { return NoGrpc(); }
Status NpcRuntimeClient::OpenSession(const OpenSessionOptions&, OpenedSession*) { return NoGrpc(); }
Status NpcRuntimeClient::Tick(const std::vector<TickEntryOptions>&, TickOutcome*) { return NoGrpc(); }
double NpcRuntimeClient::round_trip_allowance_ms() const { return 0.0; }
Status NpcRuntimeClient::Generate(const GenerateOptions&, const std::function<bool(const GenerateChunkInfo&)>&) {
  return NoGrpc();
}
Status NpcRuntimeClient::Cancel(const std::string&, bool*) { return NoGrpc(); }
Status NpcRuntimeClient::CloseSession(const std::string&, uint32_t*) { return NoGrpc(); }
Status NpcRuntimeClient::SaveSession(const std::string&, bool, SessionSnapshotInfo*) { return NoGrpc(); }
Status NpcRuntimeClient::RestoreSession(const RestoreSessionOptions&, OpenedSession*) { return NoGrpc(); }
Status NpcRuntimeClient::RegisterNpc(const RegisterNpcOptions&, RegisteredNpc*) { return NoGrpc(); }
Status NpcRuntimeClient::UnregisterNpc(const std::string&, bool) { return NoGrpc(); }
Status NpcRuntimeClient::Step(const StepOptions&, DecisionInfo*) { return NoGrpc(); }
Status NpcRuntimeClient::StepStream(const StepOptions&, const StepStreamCallbacks&, CancelToken*) { return NoGrpc(); }
Status NpcRuntimeClient::RecallMemories(const RecallOptions&, std::vector<MemoryInfo>*) { return NoGrpc(); }
std::string NpcRuntimeClient::last_replica() const { return std::string(); }
std::string NpcRuntimeClient::NpcOfSession(const std::string& session_id) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const auto found = impl_->session_npc.find(session_id);
  return found == impl_->session_npc.end() ? std::string() : found->second;
}
void NpcRuntimeClient::SetSessionNpc(const std::string& session_id, const std::string& npc_id) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->session_npc[session_id] = npc_id;
}

}  // namespace npc
