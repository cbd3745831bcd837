// Game-instance subsystem that owns the connection to the npc-runtime server and every NPC session.
//
// Once per frame (FTickableGameObject) it sends ONE Tick for all NPCs that are talking (the contract's
// "one call per frame for every NPC"), built by the core's npc::SessionBook, on a worker task; the
// response is applied on the game thread the next frame and routed to each UNpcBrainComponent.
// Sessions are opened, decisions (NpcAgent.Step) requested and sessions closed on worker tasks too:
// the game thread never waits on the network. A streamed decision (NpcAgent.StepStream) is read on a
// worker task; its events (action, sentences, done) are queued and handed to the brain on the game
// thread at the start of the next frame's Tick, in stream order.
// Fleet: per-NPC calls carry `x-npc-id` (bSendRoutingKey), bTickPerNpc splits the frame's Tick by NPC, and
// GetLastReplica() names the replica of the latest answer. Save-games: SaveSessionFor / RestoreSessionFor
// (Private/NpcRuntimeSaveGame.cpp), reached from the brain's SaveConversation / RestoreConversation.
#pragma once

#include "CoreMinimal.h"
#include "NpcRuntimeTypes.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "Tasks/Task.h"
#include "Tickable.h"

#include "npc/npc_client.h"
#include "npc/session_book.h"
#include "npc/step_stream.h"

#include <mutex>
#include <string>
#include <vector>

#include "NpcRuntimeSubsystem.generated.h"

class UNpcBrainComponent;

/** What a Tick worker task hands back to the game thread. */
struct FNpcTickJob
{
	npc::TickPlan Plan;
	npc::TickOutcome Outcome;
	npc::Status Status;
};

/** A StepStream event, from the worker reading the stream to the game thread. */
struct FNpcStreamEvent
{
	enum class EKind : uint8 { Action, Sentence, Done, Failed };
	EKind Kind = EKind::Failed;
	std::string NpcId;
	/** Which stream of that NPC (a newer one replaces it). */
	uint64 Serial = 0;
	npc::ActionChosenInfo Action;
	std::string Sentence;
	npc::DecisionInfo Decision;
	npc::Status Status;
};

/** Worker tasks push; the game thread takes everything once per frame, in push order. */
class FNpcStreamInbox
{
public:
	void Push(FNpcStreamEvent Event);
	std::vector<FNpcStreamEvent> TakeAll();

private:
	std::mutex Mutex;
	std::vector<FNpcStreamEvent> Events;
};

/** The streamed decision in progress for one NPC. */
struct FNpcActiveStream
{
	uint64 Serial = 0;
	TSharedPtr<npc::CancelToken> Cancel;
	TWeakObjectPtr<UNpcBrainComponent> Brain;
	/** Kept to fall back to Step when the server has no StepStream. */
	FNpcObservation Observation;
};

UCLASS()
class NPCRUNTIME_API UNpcRuntimeSubsystem : public UGameInstanceSubsystem, public FTickableGameObject
{
	GENERATED_BODY()

public:
	//~ USubsystem
	virtual void Initialize(FSubsystemCollectionBase& Collection) override;
	virtual void Deinitialize() override;

	//~ FTickableGameObject
	virtual void Tick(float DeltaTime) override;
	virtual TStatId GetStatId() const override;
	virtual ETickableTickType GetTickableTickType() const override;
	virtual bool IsTickable() const override;

	/** Connects to "host:port" (handshake on a worker task). Token: "authorization: Bearer" value or empty. */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	void Connect(const FString& Target, const FString& BearerToken);

	UFUNCTION(BlueprintPure, Category = "NPC Runtime")
	bool IsConnected() const { return bConnected; }

	/** Per-entry wall-time budget of a frame's Tick on the server, milliseconds (0 = server default). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime")
	float ServerBudgetMs = 2.f;

	/** Most tokens per NPC per frame (0 = only the budget limits). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime")
	int32 MaxTokensPerNpcPerFrame = 0;

		/** Fleet behind a proxy (docs/deploy.md): tick each NPC in its own call, in parallel, each carrying the NPC's
	 *  routing key so the proxy sends it to the replica holding that NPC's session. Off (default): one Tick for
	 *  every NPC per frame (it carries no routing key when it holds several NPCs), right for one server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime|Fleet")
	bool bTickPerNpc = false;

	/** Send `x-npc-id: <NPC id>` metadata on every call about one NPC (the key proxies hash on). Read by Connect. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime|Fleet")
	bool bSendRoutingKey = true;

	/** `npcrt-replica` of the latest server answer (which replica served it), for logs; empty before any. */
	UFUNCTION(BlueprintPure, Category = "NPC Runtime|Fleet")
	FString GetLastReplica() const;

	/** Save-game: snapshot of the brain's session between turns (NpcRuntime.SaveSession) on a worker task; the bytes
	 *  go to the brain's HandleConversationSaved on the game thread. False (and HandleError) when it cannot start. */
	bool SaveSessionFor(UNpcBrainComponent* Brain, bool bIncludeKv);
	/** Load-game: the snapshot becomes the brain's session (NpcRuntime.RestoreSession under a new id, routed by the
	 *  NPC's id); the session it replaces is closed; then the brain's HandleConversationRestored. */
	bool RestoreSessionFor(UNpcBrainComponent* Brain, const TArray<uint8>& Snapshot);

	/** Opens a server session for the brain (its prefix/prompt); results arrive as dialogue events. */
	void OpenSessionFor(UNpcBrainComponent* Brain);
	/** Queues a player line for the brain's next turn. */
	bool SendPlayerLine(UNpcBrainComponent* Brain, const FString& Line);
	/** Asks the NpcAgent service for a decision (perceive -> plan -> act). */
	void RequestDecision(UNpcBrainComponent* Brain, const FNpcObservation& Observation);
	/** Streams a decision (NpcAgent.StepStream) for the brain, stopping the one it may still be streaming; the
	 *  brain's HandleStream* run on the game thread, in order. */
	void StreamDecision(UNpcBrainComponent* Brain, const FNpcObservation& Observation);
	/** Stops the brain's streamed decision, if any: the server stops decoding, nothing more is raised for it. */
	void CancelDecisionStream(UNpcBrainComponent* Brain);
	/** Asks for the brain's memories (NpcAgent.RecallMemories); false when there is no client. */
	bool RecallMemories(UNpcBrainComponent* Brain, const FString& Query, int32 Limit);
	/** Forgets the brain, stops its stream and closes its session on the server. */
	void Release(UNpcBrainComponent* Brain);

private:
	void ApplyTickJob(FNpcTickJob& Job);
	void DispatchStreamEvents();
	npc::StepOptions StepOptionsFor(UNpcBrainComponent* Brain, const FNpcObservation& Observation) const;
	void StartTickJob();
	bool HasClient() const { return Client.IsValid(); }

	TSharedPtr<npc::NpcRuntimeClient> Client;
	bool bConnected = false;

	npc::SessionBook Book;
	TMap<FString, TWeakObjectPtr<UNpcBrainComponent>> Brains;

	/** This frame's Tick calls (one, or one per NPC with bTickPerNpc); applied when all are done. */
	TArray<UE::Tasks::TTask<FNpcTickJob>> TicksInFlight;
	/** Serial of restored session ids (unique within this game instance). */
	uint64 NextRestoreSerial = 1;
	uint32 MaxTickEntries = 0;

	TSharedPtr<FNpcStreamInbox> StreamInbox;
	TMap<FString, FNpcActiveStream> ActiveStreams;
	uint64 NextStreamSerial = 1;
};
