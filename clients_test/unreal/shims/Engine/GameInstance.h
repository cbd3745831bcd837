// Shim of Engine/Source/Runtime/Engine/Classes/Engine/GameInstance.h: GetSubsystem<T>().
#pragma once
#include "CoreMinimal.h"

class UGameInstance : public UObject {
 public:
  template <typename TSubsystemClass>
  TSubsystemClass* GetSubsystem() const;
};
