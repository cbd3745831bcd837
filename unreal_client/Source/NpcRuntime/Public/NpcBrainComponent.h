// The brain of one NPC: perception in, action and dialogue events out.
//
// Server mode (default): the UNpcRuntimeSubsystem opens a session on the npc-runtime server for this
// NPC; Say() queues a player line, the reply streams in through OnDialogue, frame-sliced by the
// subsystem's once-per-frame Tick; Perceive() asks the NpcAgent service for a decision. Streamed (default,
// NpcAgent.StepStream): OnNpcAction as soon as the action is chosen, OnNpcSentence per sentence of the line
// as it is decoded (subtitles, text-to-speech), OnNpcDialogueDone with the whole decision; OnAction and
// OnDialogue fire too, as for an unstreamed decision. RecallMemories() answers through OnNpcMemoriesRecalled.
// Save-games: SaveConversation() / RestoreConversation() (bytes through OnConversationSaved, OnConversationRestored).
// Local mode (bUseLocalBrain): an on-device FNpcNneBrain (NNE, ONNX Runtime CPU) decodes token ids on a
// worker thread under a per-frame token budget and raises OnLocalTokens.
#pragma once

#include "Components/ActorComponent.h"
#include "CoreMinimal.h"
#include "NpcRuntimeTypes.h"

#include "NpcBrainComponent.generated.h"

class FNpcNneBrain;
class UNpcRuntimeSubsystem;

UCLASS(ClassGroup = (AI), meta = (BlueprintSpawnableComponent))
class NPCRUNTIME_API UNpcBrainComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UNpcBrainComponent();

	/** Game-side NPC id (unique per server); defaults to the owner's name. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	FString NpcId;

	/** Server model name (empty = the server's default model). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	FString Model;

	/** Persona / system prefix; shared between NPCs through the server's prefix cache. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC", meta = (MultiLine = true))
	FString Persona;

	/** First input after the persona (may be empty). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC", meta = (MultiLine = true))
	FString OpeningPrompt;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	bool bApplyChatTemplate = false;

	/** Most tokens per reply (0 = server default). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	int32 MaxNewTokens = 64;

	/** How long the game waits for an NpcAgent decision before the runtime falls back, milliseconds. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	float DecisionDeadlineMs = 150.f;

	/** Stream decisions (NpcAgent.StepStream): the action first, then the line sentence by sentence. Turned off
	 *  by itself (falling back to Step) when the server has no StepStream. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	bool bStreamDecisions = true;

	/** Decode on the device with NNE instead of the server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC|Local")
	bool bUseLocalBrain = false;

	/** Folder of a `portable` causal-lm package (manifest.json + model.fixed.onnx). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC|Local")
	FString LocalPackageDir;

	/** Wall time the local brain may spend per frame, milliseconds (worker thread). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC|Local")
	float LocalFrameBudgetMs = 2.f;

	/** Most RunSync steps (tokens) per frame for the local brain. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC|Local")
	int32 LocalMaxTokensPerFrame = 4;

	UPROPERTY(BlueprintAssignable, Category = "NPC")
	FNpcActionSignature OnAction;

	UPROPERTY(BlueprintAssignable, Category = "NPC")
	FNpcDialogueSignature OnDialogue;

	UPROPERTY(BlueprintAssignable, Category = "NPC|Local")
	FNpcLocalTokensSignature OnLocalTokens;

	UPROPERTY(BlueprintAssignable, Category = "NPC")
	FNpcBrainErrorSignature OnBrainError;

	/** Streamed decision: the action, before any of the line (Dialogue and Reason empty). Final: never retracted. */
	UPROPERTY(BlueprintAssignable, Category = "NPC|Stream")
	FNpcActionSignature OnNpcAction;

	/** Streamed decision: one sentence of the line as soon as it is decoded. */
	UPROPERTY(BlueprintAssignable, Category = "NPC|Stream")
	FNpcSentenceSignature OnNpcSentence;

	/** Streamed decision: the whole decision (its Dialogue is the sentences joined), last. */
	UPROPERTY(BlueprintAssignable, Category = "NPC|Stream")
	FNpcActionSignature OnNpcDialogueDone;

	/** Answer of RecallMemories(). */
	UPROPERTY(BlueprintAssignable, Category = "NPC|Memory")
	FNpcMemoriesSignature OnNpcMemoriesRecalled;

	/** Answer of SaveConversation(): the snapshot bytes. */
	UPROPERTY(BlueprintAssignable, Category = "NPC|SaveGame")
	FNpcConversationSavedSignature OnConversationSaved;

	/** Answer of RestoreConversation(): the saved conversation is this NPC's session again. */
	UPROPERTY(BlueprintAssignable, Category = "NPC|SaveGame")
	FNpcConversationRestoredSignature OnConversationRestored;

	/** Save-game: snapshots this NPC's server conversation (NpcRuntime.SaveSession) between turns; the bytes arrive
	 *  through OnConversationSaved (store them in your USaveGame). bIncludeKv: also the KV cache (about 16 KiB per
	 *  token for the reference model, against a few bytes per token without it; the restore then skips re-reading
	 *  the conversation). False, with OnBrainError, when there is no server conversation or a turn is running. */
	UFUNCTION(BlueprintCallable, Category = "NPC|SaveGame")
	bool SaveConversation(bool bIncludeKv);

	/** Load-game: makes a SaveConversation snapshot this NPC's server conversation (NpcRuntime.RestoreSession under a
	 *  new session id; the session it replaces is closed). OnConversationRestored when open, OnBrainError when
	 *  refused (damaged bytes: INVALID_ARGUMENT; saved with another model: FAILED_PRECONDITION). */
	UFUNCTION(BlueprintCallable, Category = "NPC|SaveGame")
	bool RestoreConversation(const TArray<uint8>& Snapshot);

	/** Sends what the NPC perceives; the decision arrives through OnAction (and OnDialogue if it speaks), streamed
	 *  through OnNpcAction / OnNpcSentence / OnNpcDialogueDone when bStreamDecisions. A new streamed decision
	 *  stops the one still streaming. */
	UFUNCTION(BlueprintCallable, Category = "NPC")
	void Perceive(const FNpcObservation& Observation);

	/** Stops the streamed decision in progress (the server stops decoding its line); nothing more is raised for it. */
	UFUNCTION(BlueprintCallable, Category = "NPC|Stream")
	void CancelStreamedDecision();

	/** Asks the server for this NPC's memories relevant to Query (empty: most recent), at most Limit (0 = 20);
	 *  they arrive through OnNpcMemoriesRecalled. */
	UFUNCTION(BlueprintCallable, Category = "NPC|Memory")
	void RecallMemories(const FString& Query, int32 Limit);

	/** A player line for this NPC; the reply streams through OnDialogue (server, or the local brain when
	 *  bUseLocalBrain and the package has a tokenizer.json). */
	UFUNCTION(BlueprintCallable, Category = "NPC")
	bool Say(const FString& PlayerLine);

	/** Local brain: starts a turn from prompt token ids; tokens arrive through OnLocalTokens. */
	UFUNCTION(BlueprintCallable, Category = "NPC|Local")
	bool SayTokens(const TArray<int32>& PromptIds, bool bResetContext);

	UFUNCTION(BlueprintPure, Category = "NPC")
	FString GetNpcId() const;

	// Called by UNpcRuntimeSubsystem on the game thread.
	void HandleDialogue(const FString& TextDelta, bool bFinished, const FString& FullText);
	void HandleDecision(const FNpcDecision& Decision);
	void HandleError(const FString& Message);
	void HandleStreamAction(const FNpcDecision& Action);
	void HandleStreamSentence(const FString& Sentence);
	void HandleStreamDone(const FNpcDecision& Decision);
	void HandleMemories(const TArray<FNpcMemory>& Memories);
	void HandleConversationSaved(const TArray<uint8>& Snapshot);
	void HandleConversationRestored();

	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	UNpcRuntimeSubsystem* GetRuntimeSubsystem() const;

	TSharedPtr<FNpcNneBrain> LocalBrain;
	/** Local turn so far: ids and the text already raised through OnDialogue. */
	TArray<int32> LocalTurnTokens;
	FString LocalTurnText;
};
