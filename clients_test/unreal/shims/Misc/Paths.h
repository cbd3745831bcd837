// Shim of Engine/Source/Runtime/Core/Public/Misc/Paths.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"

class FPaths {
 public:
  static bool FileExists(const FString& InPath);
  static bool DirectoryExists(const FString& InPath);
  template <typename... PathTypes>
  static FString Combine(PathTypes&&... InPaths);
};
