// Shim of Engine/Source/Runtime/NNE/Public/NNETypes.h (UE 5.4): tensor data types, shapes, descriptors.
#pragma once
#include "CoreMinimal.h"

enum class ENNETensorDataType : uint8 {
  None, Char, Boolean, Half, Float, Double, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64,
  Complex64, Complex128, BFloat16
};

namespace UE::NNE {

int32 GetTensorDataTypeSizeInBytes(ENNETensorDataType InType);

class FSymbolicTensorShape {
 public:
  constexpr static int32 MaxRank = 8;
  FSymbolicTensorShape() = default;
  static FSymbolicTensorShape Make(TConstArrayView<int32> Data);
  TConstArrayView<int32> GetData() const;
  int32 Rank() const;
  bool IsConcrete() const;
};

class FTensorShape {
 public:
  constexpr static int32 MaxRank = FSymbolicTensorShape::MaxRank;
  FTensorShape() = default;
  static FTensorShape Make(TConstArrayView<uint32> Data);
  static FTensorShape MakeFromSymbolic(const FSymbolicTensorShape& SymbolicShape);
  TConstArrayView<uint32> GetData() const;
  int32 Rank() const;
  uint64 Volume() const;
  bool IsCompatibleWith(const FSymbolicTensorShape& SymbolicShape) const;
};

class FTensorDesc {
 public:
  static FTensorDesc Make(const FString& Name, const FSymbolicTensorShape& Shape, ENNETensorDataType DataType);
  const FString& GetName() const;
  ENNETensorDataType GetDataType() const;
  uint32 GetElementByteSize() const;
  const FSymbolicTensorShape& GetShape() const;

 private:
  FTensorDesc() = default;
};

}  // namespace UE::NNE
