// Shim: UObject/Interface.h.
#pragma once
#include "CoreMinimal.h"

class UInterface : public UObject {};
