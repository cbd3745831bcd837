// UnrealHeaderTool stand-in for NpcRuntimeTypes.h (USTRUCTs: no Super needed).
#pragma once
#undef CURRENT_FILE_ID
#define CURRENT_FILE_ID NpcRuntimeTypes_h
#define NpcRuntimeTypes_h_GENERATED_BODY
