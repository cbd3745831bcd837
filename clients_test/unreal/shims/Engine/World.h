// Shim of Engine/Source/Runtime/Engine/Classes/Engine/World.h: GetGameInstance().
#pragma once
#include "CoreMinimal.h"

class UGameInstance;

class UWorld : public UObject {
 public:
  UGameInstance* GetGameInstance() const;
};
