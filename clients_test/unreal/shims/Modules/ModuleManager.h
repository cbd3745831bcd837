// Shim: Modules/ModuleManager.h (IModuleInterface, IMPLEMENT_MODULE).
#pragma once
#include "CoreMinimal.h"

class IModuleInterface {
 public:
  virtual ~IModuleInterface() = default;
  virtual void StartupModule() {}
  virtual void ShutdownModule() {}
};

#define IMPLEMENT_MODULE(ModuleImplClass, ModuleName) \
  extern "C" IModuleInterface* InitializeModule_##ModuleName() { return new ModuleImplClass(); }
