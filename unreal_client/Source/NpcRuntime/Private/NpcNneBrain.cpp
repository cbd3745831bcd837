#include "NpcNneBrain.h"

#include "HAL/PlatformTime.h"
#include "Misc/FileHelper.h"
#include "Misc/Paths.h"
#include "NNE.h"
#include "NNEModelData.h"
#include "NNETypes.h"
#include "NpcRuntimeModule.h"
#include "UObject/StrongObjectPtr.h"

#include <string>

namespace
{
	const TCHAR* const OrtCpuRuntimeName = TEXT("NNERuntimeORTCpu");

	std::string ToUtf8(const FString& Text)
	{
		return std::string(TCHAR_TO_UTF8(*Text));
	}

	FString FromUtf8(const std::string& Text)
	{
		return FString(UTF8_TO_TCHAR(Text.c_str()));
	}
}

FNpcNneBrain::FNpcNneBrain() = default;

FNpcNneBrain::~FNpcNneBrain()
{
	bCancelRequested = true;
	WaitForSlice();
}

bool FNpcNneBrain::Load(const FString& PackageDir, FString& OutError)
{
	WaitForSlice();
	FString ManifestText;
	const FString ManifestPath = FPaths::Combine(PackageDir, TEXT("manifest.json"));
	if (!FFileHelper::LoadFileToString(ManifestText, *ManifestPath))
	{
		OutError = FString::Printf(TEXT("cannot read %s: is it a model package made by `npcrt export`?"), *ManifestPath);
		return false;
	}
	std::string Error;
	npc::json::Value Root;
	if (!npc::json::Parse(ToUtf8(ManifestText), &Root, &Error) || !npc::ParseManifest(Root, &Manifest, &Error) || !Kv.Init(Manifest, &Error))
	{
		OutError = FString::Printf(TEXT("%s: %s"), *ManifestPath, *FromUtf8(Error));
		return false;
	}

	// Optional: text in / text out needs the package's tokenizer.json.
	const FString TokenizerPath = FPaths::Combine(PackageDir, TEXT("tokenizer.json"));
	bHasTokenizer = false;
	FString TokenizerText;
	if (FFileHelper::LoadFileToString(TokenizerText, *TokenizerPath))
	{
		bHasTokenizer = Tokenizer.LoadFromJson(ToUtf8(TokenizerText), &Error);
		if (!bHasTokenizer)
		{
			UE_LOG(LogNpcRuntime, Warning, TEXT("%s: %s (token ids only)"), *TokenizerPath, *FromUtf8(Error));
		}
	}

	const FString ModelPath = FPaths::Combine(PackageDir, FromUtf8(Manifest.fixed.file));
	if (FPaths::FileExists(ModelPath + TEXT(".data")))
	{
		OutError = FString::Printf(TEXT("%s keeps its weights in an external .data file; export the portable package with inline weights for NNE"), *ModelPath);
		return false;
	}
	TArray<uint8> ModelBytes;
	if (!FFileHelper::LoadFileToArray(ModelBytes, *ModelPath))
	{
		OutError = FString::Printf(TEXT("cannot read %s"), *ModelPath);
		return false;
	}

	TWeakInterfacePtr<INNERuntimeCPU> Runtime = UE::NNE::GetRuntime<INNERuntimeCPU>(OrtCpuRuntimeName);
	if (!Runtime.IsValid())
	{
		OutError = TEXT("NNE runtime NNERuntimeORTCpu is not available: enable the NNERuntimeORT plugin");
		return false;
	}
	// The model data is only needed while the model is created (NNE copies what it keeps).
	TStrongObjectPtr<UNNEModelData> ModelData(NewObject<UNNEModelData>());
	ModelData->Init(TEXT("onnx"), ModelBytes);
	if (Runtime->CanCreateModelCPU(ModelData.Get()) != INNERuntimeCPU::ECanCreateModelCPUStatus::Ok)
	{
		OutError = FString::Printf(TEXT("NNERuntimeORTCpu cannot create a model from %s"), *ModelPath);
		return false;
	}
	Model = Runtime->CreateModelCPU(ModelData.Get());
	if (!Model.IsValid())
	{
		OutError = FString::Printf(TEXT("CreateModelCPU failed for %s"), *ModelPath);
		return false;
	}
	ModelInstance = Model->CreateModelInstanceCPU();
	if (!ModelInstance.IsValid())
	{
		OutError = TEXT("CreateModelInstanceCPU failed");
		return false;
	}

	// Match NNE's descriptor order to the manifest's buffers by name; build the static shapes.
	std::vector<npc::TensorBuffer> Inputs = Kv.Inputs();
	std::vector<npc::TensorBuffer> Outputs = Kv.Outputs();
	auto FindByName = [](const std::vector<npc::TensorBuffer>& Buffers, const FString& Name) -> int32
	{
		const std::string Wanted = ToUtf8(Name);
		for (size_t Index = 0; Index < Buffers.size(); ++Index)
		{
			if (Buffers[Index].name == Wanted)
			{
				return static_cast<int32>(Index);
			}
		}
		return INDEX_NONE;
	};

	InputOrder.Reset();
	TArray<UE::NNE::FTensorShape> InputShapes;
	for (const UE::NNE::FTensorDesc& Desc : ModelInstance->GetInputTensorDescs())
	{
		const int32 Index = FindByName(Inputs, Desc.GetName());
		if (Index == INDEX_NONE)
		{
			OutError = FString::Printf(TEXT("model input '%s' is not described in the manifest's fixed-capacity variant"), *Desc.GetName());
			return false;
		}
		TArray<uint32> Dims;
		for (uint64 Dim : Inputs[Index].shape)
		{
			Dims.Add(static_cast<uint32>(Dim));
		}
		InputShapes.Add(UE::NNE::FTensorShape::Make(Dims));
		InputOrder.Add(Index);
	}
	OutputOrder.Reset();
	for (const UE::NNE::FTensorDesc& Desc : ModelInstance->GetOutputTensorDescs())
	{
		const int32 Index = FindByName(Outputs, Desc.GetName());
		if (Index == INDEX_NONE)
		{
			OutError = FString::Printf(TEXT("model output '%s' is not described in the manifest's fixed-capacity variant"), *Desc.GetName());
			return false;
		}
		OutputOrder.Add(Index);
	}

	// Static shapes: the one and only (costly) shape setup.
	if (ModelInstance->SetInputTensorShapes(InputShapes) != UE::NNE::IModelInstanceCPU::ESetInputTensorShapesStatus::Ok)
	{
		OutError = TEXT("SetInputTensorShapes failed for the fixed-capacity shapes");
		return false;
	}
	InputBindings.SetNum(InputOrder.Num());
	OutputBindings.SetNum(OutputOrder.Num());
	UE_LOG(LogNpcRuntime, Log, TEXT("NNE brain loaded %s: capacity %u, vocab %u"), *ModelPath, Kv.capacity(), Kv.vocab());
	return true;
}

bool FNpcNneBrain::StartTurn(const TArray<int32>& PromptIds, int32 MaxNewTokens, bool bResetContext, FString& OutError)
{
	if (!IsLoaded())
	{
		OutError = TEXT("the local brain has no model: call Load first");
		return false;
	}
	if (bSliceInFlight)
	{
		OutError = TEXT("a slice is still running: call Cancel or wait for the turn to finish");
		return false;
	}
	if (PromptIds.Num() == 0 || MaxNewTokens <= 0)
	{
		OutError = TEXT("StartTurn needs at least one prompt token and MaxNewTokens > 0");
		return false;
	}
	PendingPrompt.Reset();
	if (bResetContext)
	{
		Kv.Reset();
		LastToken = -1;
		bLastTokenPending = false;
	}
	else if (bLastTokenPending)
	{
		PendingPrompt.Add(static_cast<int32>(LastToken));
	}
	PendingPrompt.Append(PromptIds);
	if (Kv.position() + static_cast<uint32>(PendingPrompt.Num()) >= Kv.capacity())
	{
		OutError = FString::Printf(TEXT("context full: %u of %u slots used, prompt has %d tokens"), Kv.position(), Kv.capacity(), PendingPrompt.Num());
		PendingPrompt.Reset();
		return false;
	}
	bLastTokenPending = false;
	PromptCursor = 0;
	GeneratedThisTurn = 0;
	MaxNewTokensThisTurn = MaxNewTokens;
	bCancelRequested = false;
	bTurnActive = true;
	return true;
}

bool FNpcNneBrain::StartTurnText(const FString& Text, int32 MaxNewTokens, bool bResetContext, FString& OutError)
{
	if (!bHasTokenizer)
	{
		OutError = TEXT("the package has no usable tokenizer.json: use SayTokens with token ids");
		return false;
	}
	TArray<int32> Ids;
	for (int64 Id : Tokenizer.Encode(ToUtf8(Text)))
	{
		Ids.Add(static_cast<int32>(Id));
	}
	return StartTurn(Ids, MaxNewTokens, bResetContext, OutError);
}

FString FNpcNneBrain::DecodeTokens(const TArray<int32>& TokenIds) const
{
	std::vector<int64_t> Ids;
	for (int32 Id : TokenIds)
	{
		Ids.push_back(Id);
	}
	return bHasTokenizer ? FromUtf8(Tokenizer.Decode(Ids, /*skip_special_tokens*/ true)) : FString();
}

void FNpcNneBrain::TickFrame(float BudgetMs, int32 MaxTokensPerFrame, TArray<int32>& OutNewTokens, bool& bOutTurnFinished, FString& OutError)
{
	bOutTurnFinished = false;
	if (bSliceInFlight)
	{
		if (!SliceInFlight.IsCompleted())
		{
			return;  // the worker is still decoding: never block the game thread
		}
		FNpcNneSlice& Slice = SliceInFlight.GetResult();
		OutNewTokens.Append(Slice.NewTokens);
		bOutTurnFinished = Slice.bTurnFinished;
		OutError = Slice.Error;
		bSliceInFlight = false;
		SliceInFlight = UE::Tasks::TTask<FNpcNneSlice>();
		if (bOutTurnFinished)
		{
			bTurnActive = false;
		}
	}
	if (!bTurnActive || bOutTurnFinished)
	{
		return;
	}
	// The next slice starts now and runs while the game thread renders this frame.
	TSharedRef<FNpcNneBrain> Self = AsShared();
	const int32 MaxTokens = FMath::Max(0, MaxTokensPerFrame);
	SliceInFlight = UE::Tasks::Launch(UE_SOURCE_LOCATION, [Self, BudgetMs, MaxTokens]()
	{
		return Self->RunSlice(BudgetMs, MaxTokens);
	});
	bSliceInFlight = true;
}

FNpcNneSlice FNpcNneBrain::RunSlice(float BudgetMs, int32 MaxTokens)
{
	FNpcNneSlice Slice;
	Slicer.BeginFrame(BudgetMs, static_cast<uint32>(MaxTokens));
	const double SliceStart = FPlatformTime::Seconds();
	while (!bCancelRequested && Slicer.ShouldStep((FPlatformTime::Seconds() - SliceStart) * 1000.0))
	{
		const bool bPrefill = PromptCursor < PendingPrompt.Num();
		const int64 Input = bPrefill ? PendingPrompt[PromptCursor] : LastToken;
		const double StepStart = FPlatformTime::Seconds();
		if (!RunOneStep(Input, Slice.Error))
		{
			Slice.bTurnFinished = true;
			return Slice;
		}
		Slicer.RecordStep((FPlatformTime::Seconds() - StepStart) * 1000.0);
		bLastTokenPending = false;
		if (bPrefill)
		{
			++PromptCursor;
			if (PromptCursor < PendingPrompt.Num())
			{
				continue;  // logits of inner prompt tokens are not needed
			}
		}
		const int64 Next = Kv.ArgMax();
		LastToken = Next;
		++GeneratedThisTurn;
		bLastTokenPending = true;
		Slice.NewTokens.Add(static_cast<int32>(Next));
		// The generated token enters the cache with the next step; a full cache ends the turn.
		if (IsEndToken(Next) || GeneratedThisTurn >= MaxNewTokensThisTurn || Kv.full())
		{
			Slice.bTurnFinished = true;
			return Slice;
		}
	}
	Slice.bTurnFinished = bCancelRequested.load();
	return Slice;
}

bool FNpcNneBrain::RunOneStep(int64 TokenId, FString& OutError)
{
	if (!Kv.PrepareStep(TokenId))
	{
		OutError = TEXT("context full");
		return false;
	}
	const std::vector<npc::TensorBuffer> Inputs = Kv.Inputs();
	const std::vector<npc::TensorBuffer> Outputs = Kv.Outputs();
	for (int32 Slot = 0; Slot < InputOrder.Num(); ++Slot)
	{
		const npc::TensorBuffer& Buffer = Inputs[InputOrder[Slot]];
		InputBindings[Slot].Data = Buffer.data();
		InputBindings[Slot].SizeInBytes = Buffer.bytes();
	}
	for (int32 Slot = 0; Slot < OutputOrder.Num(); ++Slot)
	{
		const npc::TensorBuffer& Buffer = Outputs[OutputOrder[Slot]];
		OutputBindings[Slot].Data = Buffer.data();
		OutputBindings[Slot].SizeInBytes = Buffer.bytes();
	}
	if (ModelInstance->RunSync(InputBindings, OutputBindings) != UE::NNE::IModelInstanceCPU::ERunSyncStatus::Ok)
	{
		OutError = FString::Printf(TEXT("RunSync failed at position %u"), Kv.position());
		return false;
	}
	Kv.CommitStep();
	return true;
}

bool FNpcNneBrain::IsEndToken(int64 TokenId) const
{
	for (int64 Eos : Manifest.eos)
	{
		if (Eos == TokenId)
		{
			return true;
		}
	}
	return false;
}

void FNpcNneBrain::Cancel()
{
	bCancelRequested = true;
	WaitForSlice();
	bTurnActive = false;
}

void FNpcNneBrain::WaitForSlice()
{
	if (bSliceInFlight)
	{
		SliceInFlight.Wait();
		bSliceInFlight = false;
		SliceInFlight = UE::Tasks::TTask<FNpcNneSlice>();
	}
}
