// Game-instance subsystem that owns the connection to the npc-runtime server and every NPC session.
//
// Once per frame (FTickableGameObject) it sends ONE Tick for all NPCs that are talking (the contract's
// "one call per frame for every NPC"), built by the core's npc::SessionBook, on a worker task; the
// response is applied on the game thread the next frame and routed to each UNpcBrainComponent.
// Sessions are opened, decisions (NpcAgent.Step) requested and sessions closed on worker tasks too:
// the game thread never waits on the network.
#pragma once

#include "CoreMinimal.h"
#include "NpcRuntimeTypes.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "Tasks/Task.h"
#include "Tickable.h"

#include "npc/npc_client.h"
#include "npc/session_book.h"

#include "NpcRuntimeSubsystem.generated.h"

class UNpcBrainComponent;

/** What a Tick worker task hands back to the game thread. */
struct FNpcTickJob
{
	npc::TickPlan Plan;
	npc::TickOutcome Outcome;
	npc::Status Status;
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

	/** Opens a server session for the brain (its prefix/prompt); results arrive as dialogue events. */
	void OpenSessionFor(UNpcBrainComponent* Brain);
	/** Queues a player line for the brain's next turn. */
	bool SendPlayerLine(UNpcBrainComponent* Brain, const FString& Line);
	/** Asks the NpcAgent service for a decision (perceive -> plan -> act). */
	void RequestDecision(UNpcBrainComponent* Brain, const FNpcObservation& Observation);
	/** Forgets the brain and closes its session on the server. */
	void Release(UNpcBrainComponent* Brain);

private:
	void ApplyTickJob(FNpcTickJob& Job);
	void StartTickJob();
	bool HasClient() const { return Client.IsValid(); }

	TSharedPtr<npc::NpcRuntimeClient> Client;
	bool bConnected = false;

	npc::SessionBook Book;
	TMap<FString, TWeakObjectPtr<UNpcBrainComponent>> Brains;

	UE::Tasks::TTask<FNpcTickJob> TickInFlight;
	bool bTickInFlight = false;
	uint32 MaxTickEntries = 0;
};
