// Shim of Engine/Source/Runtime/Engine/Public/Subsystems/Subsystem.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"

class FSubsystemCollectionBase;

class USubsystem : public UObject {
 public:
  USubsystem();
  virtual bool ShouldCreateSubsystem(UObject* /*Outer*/) const { return true; }
  virtual void Initialize(FSubsystemCollectionBase& /*Collection*/) {}
  virtual void Deinitialize() {}
};
