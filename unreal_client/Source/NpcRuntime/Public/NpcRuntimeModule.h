// NpcRuntime module: log category and module boilerplate.
#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleManager.h"

NPCRUNTIME_API DECLARE_LOG_CATEGORY_EXTERN(LogNpcRuntime, Log, All);

class FNpcRuntimeModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override;
};
