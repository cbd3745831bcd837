// Shim of Engine/Source/Runtime/Engine/Classes/GameFramework/Actor.h.
#pragma once
#include "CoreMinimal.h"

class AActor : public UObject {};
