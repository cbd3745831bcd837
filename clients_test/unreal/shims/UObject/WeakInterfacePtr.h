// Shim: UObject/WeakInterfacePtr.h (TWeakInterfacePtr: IsValid, Get, operator->).
#pragma once
#include "CoreMinimal.h"

template <class T>
struct TWeakInterfacePtr {
  TWeakInterfacePtr() = default;
  explicit TWeakInterfacePtr(T* In) : Ptr(In) {}
  bool IsValid() const { return Ptr != nullptr; }
  T* Get() const { return Ptr; }
  T* operator->() const { return Ptr; }

 private:
  T* Ptr = nullptr;
};
