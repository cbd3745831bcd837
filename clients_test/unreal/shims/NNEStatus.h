// Shim of Engine/Source/Runtime/NNE/Public/NNEStatus.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"

namespace UE::NNE {
enum class EResultStatus : uint8 { Ok = 0, Fail = 1 };
}  // namespace UE::NNE
