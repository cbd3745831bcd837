// Shim of Engine/Source/Runtime/Engine/Classes/Components/ActorComponent.h (UE 5.4): the members the
// plugin overrides or calls, with their engine signatures.
#pragma once
#include "CoreMinimal.h"

class AActor;

enum ELevelTick { LEVELTICK_TimeOnly = 0, LEVELTICK_ViewportsOnly = 1, LEVELTICK_All = 2, LEVELTICK_PauseTick = 3 };

namespace EEndPlayReason {
enum Type : int { Destroyed, LevelTransition, EndPlayInEditor, RemovedFromWorld, Quit };
}

struct FTickFunction {
  uint8 bCanEverTick : 1;
  uint8 bStartWithTickEnabled : 1;
  uint8 bAllowTickOnDedicatedServer : 1;
  float TickInterval = 0.f;
};
struct FActorComponentTickFunction : public FTickFunction {};

class UActorComponent : public UObject {
 public:
  UActorComponent();
  FActorComponentTickFunction PrimaryComponentTick;
  AActor* GetOwner() const;
  virtual UWorld* GetWorld() const override;
  virtual void BeginPlay();
  virtual void EndPlay(const EEndPlayReason::Type EndPlayReason);
  virtual void TickComponent(float DeltaTime, enum ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction);
  virtual void SetComponentTickEnabled(bool bEnabled);
};
