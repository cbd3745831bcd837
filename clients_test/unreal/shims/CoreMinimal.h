// Shim of Unreal's CoreMinimal.h (types, containers, strings, smart pointers, UObject basics, reflection
// macros as no-ops, logging). Declares only what the NpcRuntime plugin uses.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// ---- platform types -----------------------------------------------------------------------------------
typedef std::int8_t int8;
typedef std::uint8_t uint8;
typedef std::int16_t int16;
typedef std::uint16_t uint16;
typedef std::int32_t int32;
typedef std::uint32_t uint32;
typedef std::int64_t int64;
typedef std::uint64_t uint64;
typedef char ANSICHAR;
typedef char16_t TCHAR;  // Linux/Unix UE: TCHAR is 16-bit, TEXT("x") is u"x"
#define TEXT(x) u##x
#define INDEX_NONE (-1)
#define FORCEINLINE inline
#define THIRD_PARTY_INCLUDES_START
#define THIRD_PARTY_INCLUDES_END

#define CORE_API
#define COREUOBJECT_API
#define ENGINE_API
#define NNE_API
#define NPCRUNTIME_API

// ---- reflection macros (UnrealHeaderTool) -------------------------------------------------------------
#define UCLASS(...)
#define USTRUCT(...)
#define UENUM(...)
#define UINTERFACE(...)
#define UPROPERTY(...)
#define UFUNCTION(...)
#define UMETA(...)
#define NPC_SHIM_CAT(a, b) a##b
#define NPC_SHIM_XCAT(a, b) NPC_SHIM_CAT(a, b)
// Expanded by the header's *.generated.h stand-in (see shims/README.md).
#define GENERATED_BODY(...) NPC_SHIM_XCAT(CURRENT_FILE_ID, _GENERATED_BODY)

// ---- math ---------------------------------------------------------------------------------------------
struct FMath {
  template <class T> static constexpr T Max(const T A, const T B) { return A < B ? B : A; }
  template <class T> static constexpr T Min(const T A, const T B) { return A < B ? A : B; }
  template <class T> static constexpr T Clamp(const T X, const T Lo, const T Hi) { return X < Lo ? Lo : (X > Hi ? Hi : X); }
};

// ---- containers ---------------------------------------------------------------------------------------
class FDefaultAllocator {};
template <int N> class TInlineAllocator {};

template <typename T, typename Allocator = FDefaultAllocator>
class TArray {
 public:
  typedef T ElementType;
  TArray() = default;
  TArray(std::initializer_list<T> Init) : Data(Init) {}
  int32 Num() const { return static_cast<int32>(Data.size()); }
  bool IsEmpty() const { return Data.empty(); }
  int32 Add(const T& Item) { Data.push_back(Item); return Num() - 1; }
  int32 Add(T&& Item) { Data.push_back(std::move(Item)); return Num() - 1; }
  template <typename OtherAllocator> void Append(const TArray<T, OtherAllocator>& Source) { Data.insert(Data.end(), Source.begin(), Source.end()); }
  void Append(const T* Ptr, int32 Count) { Data.insert(Data.end(), Ptr, Ptr + Count); }
  void Insert(const T& Item, int32 Index) { Data.insert(Data.begin() + Index, Item); }
  void Reset(int32 NewSize = 0) { Data.clear(); Data.reserve(static_cast<size_t>(NewSize)); }
  void Empty(int32 Slack = 0) { Reset(Slack); }
  void SetNum(int32 NewNum) { Data.resize(static_cast<size_t>(NewNum)); }
  void SetNumZeroed(int32 NewNum) { Data.assign(static_cast<size_t>(NewNum), T()); }
  T* GetData() { return Data.data(); }
  const T* GetData() const { return Data.data(); }
  T& operator[](int32 Index) { return Data[static_cast<size_t>(Index)]; }
  const T& operator[](int32 Index) const { return Data[static_cast<size_t>(Index)]; }
  T* begin() { return Data.data(); }
  T* end() { return Data.data() + Data.size(); }
  const T* begin() const { return Data.data(); }
  const T* end() const { return Data.data() + Data.size(); }

 private:
  std::vector<T> Data;
};

template <typename T>
class TArrayView {
 public:
  typedef T ElementType;
  TArrayView() = default;
  TArrayView(T* InData, int32 InNum) : DataPtr(InData), ArrayNum(InNum) {}
  template <typename U, typename A, typename = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  TArrayView(TArray<U, A>& Other) : DataPtr(Other.GetData()), ArrayNum(Other.Num()) {}
  template <typename U, typename A, typename = std::enable_if_t<std::is_convertible_v<const U (*)[], T (*)[]>>>
  TArrayView(const TArray<U, A>& Other) : DataPtr(Other.GetData()), ArrayNum(Other.Num()) {}
  TArrayView(std::initializer_list<std::remove_const_t<T>> List) : DataPtr(List.begin()), ArrayNum(static_cast<int32>(List.size())) {}
  int32 Num() const { return ArrayNum; }
  T* GetData() const { return DataPtr; }
  T& operator[](int32 Index) const { return DataPtr[Index]; }
  T* begin() const { return DataPtr; }
  T* end() const { return DataPtr + ArrayNum; }

 private:
  T* DataPtr = nullptr;
  int32 ArrayNum = 0;
};
template <typename T> using TConstArrayView = TArrayView<const T>;

template <typename K, typename V>
struct TPair {
  K Key;
  V Value;
};

class FString;

template <typename K, typename V>
class TMap {
 public:
  V& Add(const K& Key, const V& Value) { return Items[Key] = Value; }
  V* Find(const K& Key) { auto It = Items.find(Key); return It == Items.end() ? nullptr : &It->second; }
  const V* Find(const K& Key) const { auto It = Items.find(Key); return It == Items.end() ? nullptr : &It->second; }
  int32 Remove(const K& Key) { return static_cast<int32>(Items.erase(Key)); }
  void Reset() { Items.clear(); }
  int32 Num() const { return static_cast<int32>(Items.size()); }
  template <typename A> int32 GetKeys(TArray<K, A>& OutKeys) const {
    OutKeys.Reset();
    for (const auto& It : Items) OutKeys.Add(It.first);
    return OutKeys.Num();
  }
  // Range-for yields TPair<K, V>& in UE; a snapshot is enough for the syntax check.
  std::vector<TPair<K, V>> Pairs() const {
    std::vector<TPair<K, V>> Out;
    for (const auto& It : Items) Out.push_back(TPair<K, V>{It.first, It.second});
    return Out;
  }
  struct FIterator {
    typename std::map<K, V>::iterator It;
    TPair<K, V> Current;
    TPair<K, V>& operator*() { Current = TPair<K, V>{It->first, It->second}; return Current; }
    FIterator& operator++() { ++It; return *this; }
    bool operator!=(const FIterator& Other) const { return It != Other.It; }
  };
  struct FConstIterator {
    typename std::map<K, V>::const_iterator It;
    TPair<K, V> Current;
    const TPair<K, V>& operator*() { Current = TPair<K, V>{It->first, It->second}; return Current; }
    FConstIterator& operator++() { ++It; return *this; }
    bool operator!=(const FConstIterator& Other) const { return It != Other.It; }
  };
  FIterator begin() { return FIterator{Items.begin(), {}}; }
  FIterator end() { return FIterator{Items.end(), {}}; }
  FConstIterator begin() const { return FConstIterator{Items.begin(), {}}; }
  FConstIterator end() const { return FConstIterator{Items.end(), {}}; }

 private:
  std::map<K, V> Items;
};

// ---- strings ------------------------------------------------------------------------------------------
namespace ESearchCase {
enum Type { CaseSensitive, IgnoreCase };
}
class FString {
 public:
  FString() = default;
  FString(const TCHAR* Text) : Data(Text ? Text : u"") {}
  const TCHAR* operator*() const { return Data.c_str(); }
  bool IsEmpty() const { return Data.empty(); }
  int32 Len() const { return static_cast<int32>(Data.size()); }
  bool StartsWith(const FString& InPrefix, ESearchCase::Type SearchCase = ESearchCase::IgnoreCase) const {
    (void)SearchCase;
    return Data.compare(0, InPrefix.Data.size(), InPrefix.Data) == 0;
  }
  FString RightChop(int32 Count) const { FString R; R.Data = Data.substr(static_cast<size_t>(Count)); return R; }
  bool operator==(const FString& Other) const { return Data == Other.Data; }
  bool operator<(const FString& Other) const { return Data < Other.Data; }
  FString& operator+=(const FString& Other) { Data += Other.Data; return *this; }
  friend FString operator+(const FString& A, const TCHAR* B) { FString R(A); R.Data += B; return R; }
  friend FString operator+(const FString& A, const FString& B) { FString R(A); R.Data += B.Data; return R; }
  template <typename FmtType, typename... Types>
  static FString Printf(const FmtType& Fmt, Types... Args) { (void)sizeof...(Args); return FString(Fmt); }

 private:
  std::u16string Data;
};

// TCHAR_TO_UTF8 / UTF8_TO_TCHAR: temporaries valid until the end of the full expression.
class FTCHARToUTF8 {
 public:
  explicit FTCHARToUTF8(const TCHAR* Source);
  const ANSICHAR* Get() const;
  int32 Length() const;
};
class FUTF8ToTCHAR {
 public:
  explicit FUTF8ToTCHAR(const ANSICHAR* Source);
  const TCHAR* Get() const;
  int32 Length() const;
};
#define TCHAR_TO_UTF8(str) (ANSICHAR*)FTCHARToUTF8((const TCHAR*)str).Get()
#define UTF8_TO_TCHAR(str) (TCHAR*)FUTF8ToTCHAR((const ANSICHAR*)str).Get()

// ---- smart pointers -----------------------------------------------------------------------------------
enum class ESPMode : uint8 { NotThreadSafe = 0, ThreadSafe = 1 };

template <class T, ESPMode Mode = ESPMode::ThreadSafe> class TSharedRef;

template <class T, ESPMode Mode = ESPMode::ThreadSafe>
class TSharedPtr {
 public:
  TSharedPtr() = default;
  TSharedPtr(std::nullptr_t) {}
  explicit TSharedPtr(std::shared_ptr<T> In) : Ptr(std::move(In)) {}
  template <class U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  TSharedPtr(const TSharedPtr<U, Mode>& Other) : Ptr(Other.Std()) {}
  template <class U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  TSharedPtr(const TSharedRef<U, Mode>& Other) : Ptr(Other.Std()) {}
  bool IsValid() const { return Ptr != nullptr; }
  explicit operator bool() const { return IsValid(); }
  T* Get() const { return Ptr.get(); }
  T* operator->() const { return Ptr.get(); }
  T& operator*() const { return *Ptr; }
  void Reset() { Ptr.reset(); }
  TSharedRef<T, Mode> ToSharedRef() const { return TSharedRef<T, Mode>(Ptr); }
  const std::shared_ptr<T>& Std() const { return Ptr; }

 private:
  std::shared_ptr<T> Ptr;
};

template <class T, ESPMode Mode>
class TSharedRef {
 public:
  explicit TSharedRef(std::shared_ptr<T> In) : Ptr(std::move(In)) {}
  template <class U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  TSharedRef(const TSharedRef<U, Mode>& Other) : Ptr(Other.Std()) {}
  T* operator->() const { return Ptr.get(); }
  T& Get() const { return *Ptr; }
  const std::shared_ptr<T>& Std() const { return Ptr; }

 private:
  std::shared_ptr<T> Ptr;
};

template <class T, ESPMode Mode = ESPMode::ThreadSafe>
class TSharedFromThis : public std::enable_shared_from_this<T> {
 public:
  TSharedRef<T, Mode> AsShared() { return TSharedRef<T, Mode>(this->shared_from_this()); }
};

template <class T, ESPMode Mode = ESPMode::ThreadSafe, typename... Args>
TSharedRef<T, Mode> MakeShared(Args&&... InArgs) {
  return TSharedRef<T, Mode>(std::make_shared<T>(std::forward<Args>(InArgs)...));
}

template <class T> using TUniquePtr = std::unique_ptr<T>;
template <class T, typename... Args> TUniquePtr<T> MakeUnique(Args&&... InArgs) { return std::make_unique<T>(std::forward<Args>(InArgs)...); }

template <typename Signature> class TFunction;
template <typename R, typename... A>
class TFunction<R(A...)> : public std::function<R(A...)> {
  using std::function<R(A...)>::function;
};
template <typename Signature> class TUniqueFunction;
template <typename R, typename... A>
class TUniqueFunction<R(A...)> : public std::function<R(A...)> {
  using std::function<R(A...)>::function;
};

// ---- UObject basics -----------------------------------------------------------------------------------
class UWorld;
class UClass;

class UObject {
 public:
  virtual ~UObject() = default;
  FString GetName() const;
  virtual UWorld* GetWorld() const;
  bool IsTemplate() const;
};

template <class T> T* NewObject(UObject* Outer = nullptr);

template <class T>
class TObjectPtr {
 public:
  TObjectPtr() = default;
  TObjectPtr(T* In) : Ptr(In) {}
  T* Get() const { return Ptr; }
  T* operator->() const { return Ptr; }
  operator T*() const { return Ptr; }

 private:
  T* Ptr = nullptr;
};

template <class T>
class TWeakObjectPtr {
 public:
  TWeakObjectPtr() = default;
  TWeakObjectPtr(const T* In) : Ptr(const_cast<T*>(In)) {}
  T* Get() const { return Ptr; }
  bool IsValid() const { return Ptr != nullptr; }

 private:
  T* Ptr = nullptr;
};

// ---- logging ------------------------------------------------------------------------------------------
namespace ELogVerbosity {
enum Type : uint8 { NoLogging = 0, Fatal, Error, Warning, Display, Log, Verbose, VeryVerbose, All = VeryVerbose };
}
struct FNpcShimLogCategory {};
#define DECLARE_LOG_CATEGORY_EXTERN(CategoryName, DefaultVerbosity, CompileTimeVerbosity) \
  extern FNpcShimLogCategory CategoryName
#define DEFINE_LOG_CATEGORY(CategoryName) FNpcShimLogCategory CategoryName
template <typename... Types>
inline void NpcShimLog(const FNpcShimLogCategory&, ELogVerbosity::Type, const TCHAR*, Types...) {}
#define UE_LOG(CategoryName, Verbosity, Format, ...) NpcShimLog(CategoryName, ELogVerbosity::Verbosity, Format, ##__VA_ARGS__)

// ---- delegates ----------------------------------------------------------------------------------------
template <typename... Params>
class TNpcShimMulticast {
 public:
  void Broadcast(Params... Args) const { (void)sizeof...(Args); }
};
#define DECLARE_DYNAMIC_MULTICAST_DELEGATE(Name) class Name : public TNpcShimMulticast<> {}
#define DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(Name, T1, N1) class Name : public TNpcShimMulticast<T1> {}
#define DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(Name, T1, N1, T2, N2) class Name : public TNpcShimMulticast<T1, T2> {}
#define DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(Name, T1, N1, T2, N2, T3, N3) \
  class Name : public TNpcShimMulticast<T1, T2, T3> {}
