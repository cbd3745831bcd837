// Shim of Engine/Source/Runtime/Core/Public/HAL/PlatformTime.h: FPlatformTime::Seconds().
#pragma once
#include "CoreMinimal.h"

struct FPlatformTime {
  static double Seconds();
};
