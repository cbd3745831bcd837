// Shim of Engine/Source/Runtime/Core/Public/Async/Async.h (UE 5.4): AsyncTask to a named thread.
#pragma once
#include "CoreMinimal.h"

namespace ENamedThreads {
enum Type : int32 { UnusedAnchor = -1, RHIThread, GameThread, ActualRenderingThread, AnyThread = 0xff };
}

void AsyncTask(ENamedThreads::Type Thread, TUniqueFunction<void()> Function);
