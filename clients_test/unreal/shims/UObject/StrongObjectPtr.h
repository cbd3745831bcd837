// Shim: UObject/StrongObjectPtr.h (TStrongObjectPtr keeps a UObject alive outside UPROPERTYs).
#pragma once
#include "CoreMinimal.h"

template <typename ObjectType>
class TStrongObjectPtr {
 public:
  TStrongObjectPtr() = default;
  explicit TStrongObjectPtr(ObjectType* InObject) : Object(InObject) {}
  ObjectType* Get() const { return Object; }
  ObjectType* operator->() const { return Object; }
  bool IsValid() const { return Object != nullptr; }
  void Reset() { Object = nullptr; }

 private:
  ObjectType* Object = nullptr;
};
