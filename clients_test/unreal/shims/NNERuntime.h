// Shim of Engine/Source/Runtime/NNE/Public/NNERuntime.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"
#include "UObject/Interface.h"

class INNERuntime {
 public:
  virtual ~INNERuntime() = default;
  virtual FString GetRuntimeName() const = 0;
};
