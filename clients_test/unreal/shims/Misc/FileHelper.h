// Shim of Engine/Source/Runtime/Core/Public/Misc/FileHelper.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"

struct FFileHelper {
  enum class EHashOptions { None = 0, EnableVerify = 1 << 0, ErrorMissingHash = 1 << 1 };
  static bool LoadFileToArray(TArray<uint8>& Result, const TCHAR* Filename, uint32 Flags = 0);
  static bool LoadFileToString(FString& Result, const TCHAR* Filename, EHashOptions VerifyFlags = EHashOptions::None,
                               uint32 ReadFlags = 0);
};
