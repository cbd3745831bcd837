// UnrealHeaderTool stand-in for NpcRuntimeSubsystem.h.
#pragma once
#undef CURRENT_FILE_ID
#define CURRENT_FILE_ID NpcRuntimeSubsystem_h
#define NpcRuntimeSubsystem_h_GENERATED_BODY \
 public:                                     \
  typedef UGameInstanceSubsystem Super;      \
  typedef UNpcRuntimeSubsystem ThisClass;    \
                                             \
 private:
