// Shim of Engine/Source/Runtime/Engine/Public/Tickable.h (UE 5.4) + the stats macro it is used with.
#pragma once
#include "CoreMinimal.h"

struct TStatId {};
#define RETURN_QUICK_DECLARE_CYCLE_STAT(StatId, GroupId) return TStatId()

enum class ETickableTickType : uint8 { Conditional, Always, Never };

class FTickableObjectBase {
 public:
  virtual ~FTickableObjectBase() = default;
  virtual void Tick(float DeltaTime) = 0;
  virtual ETickableTickType GetTickableTickType() const { return ETickableTickType::Conditional; }
  virtual bool IsTickable() const { return true; }
  virtual bool IsAllowedToTick() const { return true; }
  virtual TStatId GetStatId() const = 0;
};

class FTickableGameObject : public FTickableObjectBase {
 public:
  FTickableGameObject();
  virtual ~FTickableGameObject();
  virtual bool IsTickableWhenPaused() const { return false; }
  virtual bool IsTickableInEditor() const { return false; }
  virtual UWorld* GetTickableGameObjectWorld() const { return nullptr; }
};
