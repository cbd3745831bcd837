// Shim of Engine/Source/Runtime/NNE/Public/NNEModelData.h (UE 5.4).
#pragma once
#include "CoreMinimal.h"

class UNNEModelData : public UObject {
 public:
  void Init(const FString& Type, TConstArrayView<uint8> Buffer,
            const TMap<FString, TConstArrayView<uint8>>& AdditionalBuffers = TMap<FString, TConstArrayView<uint8>>());
  FString GetFileType() const;
  TConstArrayView<uint8> GetFileData() const;
};
