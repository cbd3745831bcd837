// Shim of Engine/Source/Runtime/Engine/Public/Subsystems/GameInstanceSubsystem.h (UE 5.4).
#pragma once
#include "Subsystems/Subsystem.h"

class UGameInstance;

class UGameInstanceSubsystem : public USubsystem {
 public:
  UGameInstanceSubsystem();
  UGameInstance* GetGameInstance() const;
};
