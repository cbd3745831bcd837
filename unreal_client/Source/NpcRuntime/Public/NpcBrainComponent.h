// The brain of one NPC: perception in, action and dialogue events out.
//
// Server mode (default): the UNpcRuntimeSubsystem opens a session on the npc-runtime server for this
// NPC; Say() queues a player line, the reply streams in through OnDialogue, frame-sliced by the
// subsystem's once-per-frame Tick; Perceive() asks the NpcAgent service for a decision (OnAction).
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

	/** Sends what the NPC perceives; the decision arrives through OnAction (and OnDialogue if it speaks). */
	UFUNCTION(BlueprintCallable, Category = "NPC")
	void Perceive(const FNpcObservation& Observation);

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
