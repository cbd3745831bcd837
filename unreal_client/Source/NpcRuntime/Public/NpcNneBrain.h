// On-device NPC brain on Unreal NNE (ONNX Runtime CPU): decodes with the fixed-capacity KV variant of a
// `portable` model package (model.fixed.onnx), frame-sliced.
//
// * Runtime "NNERuntimeORTCpu"; the model and its instance are created once (Load).
// * All shapes are static ([1, kv_heads, capacity, head_dim] KV, attention_mask [1, capacity + 1]), so
//   SetInputTensorShapes is called once, at Load; every step binds the same host buffers (the KV pair
//   is ping-ponged, no copy) — see npc::FixedKvCache in the core.
// * One RunSync per token, on a worker thread (UE::Tasks): TickFrame, on the game thread, collects the
//   tokens of the finished slice and launches the next one; the slice runs as many steps as the
//   frame-budget slicer predicts to fit in BudgetMs (EWMA of measured RunSync costs), and at most
//   MaxTokensPerFrame. The game thread never blocks on inference.
#pragma once

#include "CoreMinimal.h"
#include "NNERuntimeCPU.h"
#include "Tasks/Task.h"

#include <atomic>

#include "npc/bpe_tokenizer.h"
#include "npc/fixed_kv_cache.h"
#include "npc/frame_budget_slicer.h"
#include "npc/model_manifest.h"

/** Result of one worker slice, read by the game thread once the task completed. */
struct FNpcNneSlice
{
	TArray<int32> NewTokens;
	bool bTurnFinished = false;
	FString Error;
};

class NPCRUNTIME_API FNpcNneBrain : public TSharedFromThis<FNpcNneBrain>
{
public:
	FNpcNneBrain();
	~FNpcNneBrain();

	/** Loads PackageDir/manifest.json and its fixed-capacity variant; creates model + instance and sets
	 *  the (static) input shapes once. Game thread. */
	bool Load(const FString& PackageDir, FString& OutError);
	bool IsLoaded() const { return ModelInstance.IsValid(); }

	/** Starts a turn: feeds PromptIds (one RunSync per prompt token, within the frame budgets), then
	 *  generates greedily up to MaxNewTokens or an end token. ResetContext empties the KV cache first.
	 *  False when a slice is still running or the context is full. */
	bool StartTurn(const TArray<int32>& PromptIds, int32 MaxNewTokens, bool bResetContext, FString& OutError);

	/** Text turn: encodes Text with the package's tokenizer.json (byte-level BPE), then StartTurn. */
	bool StartTurnText(const FString& Text, int32 MaxNewTokens, bool bResetContext, FString& OutError);

	/** Token ids -> text with the package's tokenizer (special tokens skipped). */
	FString DecodeTokens(const TArray<int32>& TokenIds) const;
	bool HasTokenizer() const { return bHasTokenizer; }

	/** Once per frame (game thread): gathers the finished slice's tokens, launches the next slice. */
	void TickFrame(float BudgetMs, int32 MaxTokensPerFrame, TArray<int32>& OutNewTokens, bool& bOutTurnFinished, FString& OutError);

	/** Stops the current turn after the step in flight (waits for the worker). */
	void Cancel();

	bool IsBusy() const { return bTurnActive; }
	int32 ContextTokens() const { return static_cast<int32>(Kv.position()); }
	double PredictedStepMs() const { return Slicer.PredictedStepMs(); }

private:
	/** Worker: runs steps while the slicer allows. Only the worker touches Kv/Slicer while it runs. */
	FNpcNneSlice RunSlice(float BudgetMs, int32 MaxTokens);
	/** Worker: one RunSync for TokenId at the next cache slot. */
	bool RunOneStep(int64 TokenId, FString& OutError);
	bool IsEndToken(int64 TokenId) const;
	void WaitForSlice();

	TSharedPtr<UE::NNE::IModelCPU> Model;
	TSharedPtr<UE::NNE::IModelInstanceCPU> ModelInstance;

	npc::ModelManifest Manifest;
	npc::FixedKvCache Kv;
	npc::FrameBudgetSlicer Slicer;
	npc::BpeTokenizer Tokenizer;
	bool bHasTokenizer = false;

	/** Manifest buffer index of each NNE input / output, in the instance's descriptor order. */
	TArray<int32> InputOrder;
	TArray<int32> OutputOrder;
	TArray<UE::NNE::FTensorBindingCPU> InputBindings;
	TArray<UE::NNE::FTensorBindingCPU> OutputBindings;

	// Turn state: written by the game thread between slices, by the worker during a slice.
	TArray<int32> PendingPrompt;
	int32 PromptCursor = 0;
	int64 LastToken = -1;
	/** The last generated token has not been fed back yet (the turn ended on it): the next turn starts with it. */
	bool bLastTokenPending = false;
	int32 GeneratedThisTurn = 0;
	int32 MaxNewTokensThisTurn = 0;
	bool bTurnActive = false;

	std::atomic<bool> bCancelRequested{false};
	UE::Tasks::TTask<FNpcNneSlice> SliceInFlight;
	bool bSliceInFlight = false;
};
