// Shim of Engine/Source/Runtime/Core/Public/Tasks/Task.h (UE 5.4): UE::Tasks::Launch and TTask.
#pragma once
#include "CoreMinimal.h"

#define UE_SOURCE_LOCATION u"" __FILE__

namespace UE::Tasks {

enum class ETaskPriority : int8 { High, Normal, Default = Normal, ForegroundCount, BackgroundHigh, BackgroundNormal, BackgroundLow };

namespace Private {
class FTaskHandle {
 public:
  bool IsValid() const;
  bool IsCompleted() const;
  bool Wait() const;
};
}  // namespace Private

template <typename ResultType>
class TTask : public Private::FTaskHandle {
 public:
  TTask() = default;
  ResultType& GetResult();
};

template <>
class TTask<void> : public Private::FTaskHandle {
 public:
  TTask() = default;
  void GetResult();
};

// UE 5.4: template<typename TaskBodyType> TTask<TInvokeResult_T<TaskBodyType>> Launch(const TCHAR* DebugName,
//   TaskBodyType&& TaskBody, ETaskPriority Priority = ETaskPriority::Normal, EExtendedTaskPriority = None,
//   ETaskFlags = None). The stand-in only type-checks the call.
template <typename TaskBodyType>
TTask<std::invoke_result_t<TaskBodyType>> Launch(const TCHAR* /*DebugName*/, TaskBodyType&& /*TaskBody*/,
                                                  ETaskPriority /*Priority*/ = ETaskPriority::Normal) {
  return {};
}

using FTask = TTask<void>;

}  // namespace UE::Tasks
