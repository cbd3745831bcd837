// Blueprint-facing types of the NPC runtime plugin: what an NPC perceives and what it decides.
#pragma once

#include "CoreMinimal.h"

#include "NpcRuntimeTypes.generated.h"

/** What an NPC perceives this step (npc.v1.Observation + events). */
USTRUCT(BlueprintType)
struct NPCRUNTIME_API FNpcObservation
{
	GENERATED_BODY()

	/** Game clock, seconds since the start of the game (monotonic). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	double GameTimeSeconds = 0.0;

	/** Numeric fields for FSM guards and the policy, e.g. player_distance, npc_health. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	TMap<FString, double> Values;

	/** Categorical fields, e.g. location=market. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	TMap<FString, FString> Tags;

	/** What the player just said (untrusted text). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	FString PlayerUtterance;

	/** Event kind, e.g. "theft"; empty = no event this step. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	FString EventKind;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	FString EventDescription;

	/** Story-critical events may be escalated to the cloud model. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC")
	bool bStoryCritical = false;
};

/** A decision of the NPC brain (npc.v1.Decision): the action is always one the FSM allows. */
USTRUCT(BlueprintType)
struct NPCRUNTIME_API FNpcDecision
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	FString State;

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	FString Action;

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	TMap<FString, FString> Arguments;

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	FString Dialogue;

	/** Confidence of the chosen action, 0-1. */
	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	float Confidence = 0.f;

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	bool bEscalated = false;

	/** Why this decision, e.g. "fsm: reflex in state 'combat'". */
	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	FString Reason;
};

/** Where a memory came from (npc.v1.MemoryKind). */
UENUM(BlueprintType)
enum class ENpcMemoryKind : uint8
{
	Unspecified = 0,
	/** Something perceived: an observation, a game event, a seed memory. */
	Observation = 1,
	/** Something said, by the player to the NPC or by the NPC. */
	Dialogue = 2,
	/** An insight the NPC wrote back while reflecting. */
	Reflection = 3,
	/** A decision the cloud model made for the NPC. */
	Escalation = 4,
};

/** One of an NPC's memories (npc.v1.Memory), as NpcAgent.RecallMemories ranks them. */
USTRUCT(BlueprintType)
struct NPCRUNTIME_API FNpcMemory
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	FString Text;

	/** Importance 1-10. */
	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	float Importance = 0.f;

	/** Game time the memory was written, seconds. */
	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	double GameTimeSeconds = 0.0;

	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	ENpcMemoryKind Kind = ENpcMemoryKind::Unspecified;

	/** The retrieval score it was ranked by (higher first); 0 for an empty query. */
	UPROPERTY(BlueprintReadOnly, Category = "NPC")
	float Score = 0.f;
};

/** A decision, or (streamed) its action before the line: then Dialogue and Reason are empty. */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FNpcActionSignature, const FNpcDecision&, Decision);
/** One sentence of a streamed line, exactly as decoded (leading space kept): the sentences concatenate to the line. */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FNpcSentenceSignature, const FString&, Sentence);
/** An NPC's memories, best first. */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FNpcMemoriesSignature, const TArray<FNpcMemory>&, Memories);
/** Text produced since the last event; bFinished on the last piece of a turn (FullText then holds it all). */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FNpcDialogueSignature, const FString&, TextDelta, bool, bFinished, const FString&, FullText);
/** Token ids decoded by the local (on-device) brain this frame. */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FNpcLocalTokensSignature, const TArray<int32>&, TokenIds, bool, bFinished);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FNpcBrainErrorSignature, const FString&, Message);
/** A save-game snapshot of an NPC's server conversation (opaque bytes: keep them in your USaveGame). */
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FNpcConversationSavedSignature, const TArray<uint8>&, Snapshot);
/** A saved conversation is open again on the server; the NPC's next line continues it. */
DECLARE_DYNAMIC_MULTICAST_DELEGATE(FNpcConversationRestoredSignature);
