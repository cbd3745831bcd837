// Shim of Engine/Source/Runtime/NNE/Public/NNERuntimeCPU.h (UE 5.4; in 5.5+ IModelInstanceCPU derives
// from IModelInstanceRunSync with the same members and typedefs).
#pragma once
#include "CoreMinimal.h"
#include "NNEStatus.h"
#include "NNETypes.h"
#include "UObject/Interface.h"

class UNNEModelData;

namespace UE::NNE {

struct FTensorBindingCPU {
  void* Data;
  uint64 SizeInBytes;
};

class IModelInstanceCPU {
 public:
  using ESetInputTensorShapesStatus = EResultStatus;
  using ERunSyncStatus = EResultStatus;

  virtual ~IModelInstanceCPU() = default;
  virtual TConstArrayView<FTensorDesc> GetInputTensorDescs() const = 0;
  virtual TConstArrayView<FTensorDesc> GetOutputTensorDescs() const = 0;
  virtual TConstArrayView<FTensorShape> GetInputTensorShapes() const = 0;
  virtual TConstArrayView<FTensorShape> GetOutputTensorShapes() const = 0;
  virtual ESetInputTensorShapesStatus SetInputTensorShapes(TConstArrayView<FTensorShape> InInputShapes) = 0;
  virtual ERunSyncStatus RunSync(TConstArrayView<FTensorBindingCPU> InInputTensors, TConstArrayView<FTensorBindingCPU> InOutputTensors) = 0;
};

class IModelCPU {
 public:
  virtual ~IModelCPU() = default;
  virtual TSharedPtr<UE::NNE::IModelInstanceCPU> CreateModelInstanceCPU() = 0;
};

}  // namespace UE::NNE

class UNNERuntimeCPU : public UInterface {};

class INNERuntimeCPU {
 public:
  using ECanCreateModelCPUStatus = UE::NNE::EResultStatus;
  virtual ~INNERuntimeCPU() = default;
  virtual ECanCreateModelCPUStatus CanCreateModelCPU(const TObjectPtr<UNNEModelData> ModelData) const = 0;
  virtual TSharedPtr<UE::NNE::IModelCPU> CreateModelCPU(const TObjectPtr<UNNEModelData> ModelData) = 0;
};
