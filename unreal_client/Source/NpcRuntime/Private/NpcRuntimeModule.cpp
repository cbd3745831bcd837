#include "NpcRuntimeModule.h"

DEFINE_LOG_CATEGORY(LogNpcRuntime);

void FNpcRuntimeModule::StartupModule()
{
	UE_LOG(LogNpcRuntime, Log, TEXT("NpcRuntime module started (gRPC client %s)"), NPC_WITH_GRPC ? TEXT("enabled") : TEXT("disabled"));
}

void FNpcRuntimeModule::ShutdownModule()
{
}

IMPLEMENT_MODULE(FNpcRuntimeModule, NpcRuntime)
