#include "npc/npc_types.h"

namespace npc {

const char* StatusCodeName(StatusCode code) {
  // Indexed by the gRPC code number.
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
      "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return (index >= 0 && index < 17) ? kNames[index] : "UNKNOWN";
}

std::string Status::ToString() const {
  return message.empty() ? StatusCodeName(code) : std::string(StatusCodeName(code)) + ": " + message;
}

}  // namespace npc
