// UnrealHeaderTool stand-in for NpcBrainComponent.h.
#pragma once
#undef CURRENT_FILE_ID
#define CURRENT_FILE_ID NpcBrainComponent_h
#define NpcBrainComponent_h_GENERATED_BODY \
 public:                                   \
  typedef UActorComponent Super;           \
  typedef UNpcBrainComponent ThisClass;    \
                                           \
 private:
