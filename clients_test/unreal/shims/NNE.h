// Shim of Engine/Source/Runtime/NNE/Public/NNE.h (UE 5.4): runtime registry.
#pragma once
#include "CoreMinimal.h"
#include "NNERuntime.h"
#include "NNEStatus.h"
#include "UObject/WeakInterfacePtr.h"

namespace UE::NNE {

TArray<FString> GetAllRuntimeNames();
TWeakInterfacePtr<INNERuntime> GetRuntime(const FString& Name);

template <class T>
TWeakInterfacePtr<T> GetRuntime(const FString& Name) {
  TWeakInterfacePtr<INNERuntime> Runtime = GetRuntime(Name);
  return TWeakInterfacePtr<T>(dynamic_cast<T*>(Runtime.Get()));  // UE: Cast<T>
}

}  // namespace UE::NNE
