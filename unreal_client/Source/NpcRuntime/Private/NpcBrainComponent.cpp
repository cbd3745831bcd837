#include "NpcBrainComponent.h"

#include "Engine/GameInstance.h"
#include "Engine/World.h"
#include "GameFramework/Actor.h"
#include "NpcNneBrain.h"
#include "NpcRuntimeModule.h"
#include "NpcRuntimeSubsystem.h"

UNpcBrainComponent::UNpcBrainComponent()
{
	// Ticks only to pump the local brain; the server path is driven by the subsystem's single Tick.
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.bStartWithTickEnabled = false;
}

FString UNpcBrainComponent::GetNpcId() const
{
	if (!NpcId.IsEmpty())
	{
		return NpcId;
	}
	const AActor* Owner = GetOwner();
	return Owner ? Owner->GetName() : GetName();
}

UNpcRuntimeSubsystem* UNpcBrainComponent::GetRuntimeSubsystem() const
{
	const UWorld* World = GetWorld();
	UGameInstance* GameInstance = World ? World->GetGameInstance() : nullptr;
	return GameInstance ? GameInstance->GetSubsystem<UNpcRuntimeSubsystem>() : nullptr;
}

void UNpcBrainComponent::BeginPlay()
{
	Super::BeginPlay();
	if (bUseLocalBrain)
	{
		LocalBrain = MakeShared<FNpcNneBrain>();
		FString Error;
		if (!LocalBrain->Load(LocalPackageDir, Error))
		{
			LocalBrain.Reset();
			HandleError(FString::Printf(TEXT("local brain: %s"), *Error));
			return;
		}
		SetComponentTickEnabled(true);
		return;
	}
	if (UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem())
	{
		Runtime->OpenSessionFor(this);
	}
}

void UNpcBrainComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	if (LocalBrain.IsValid())
	{
		LocalBrain->Cancel();
		LocalBrain.Reset();
	}
	if (UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem())
	{
		Runtime->Release(this);
	}
	Super::EndPlay(EndPlayReason);
}

void UNpcBrainComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!LocalBrain.IsValid())
	{
		return;
	}
	TArray<int32> NewTokens;
	bool bFinished = false;
	FString Error;
	LocalBrain->TickFrame(LocalFrameBudgetMs, LocalMaxTokensPerFrame, NewTokens, bFinished, Error);
	if (!Error.IsEmpty())
	{
		HandleError(FString::Printf(TEXT("local brain: %s"), *Error));
	}
	if (NewTokens.Num() > 0 || bFinished)
	{
		OnLocalTokens.Broadcast(NewTokens, bFinished);
	}
	if (LocalBrain->HasTokenizer() && (NewTokens.Num() > 0 || bFinished))
	{
		// Decode the whole turn so far and raise only the new text (a character split over tokens
		// shows up once complete).
		LocalTurnTokens.Append(NewTokens);
		const FString FullText = LocalBrain->DecodeTokens(LocalTurnTokens);
		const FString Delta = FullText.StartsWith(LocalTurnText, ESearchCase::CaseSensitive) ? FullText.RightChop(LocalTurnText.Len()) : FullText;
		LocalTurnText = FullText;
		OnDialogue.Broadcast(Delta, bFinished, FullText);
		if (bFinished)
		{
			LocalTurnTokens.Reset();
			LocalTurnText = FString();
		}
	}
}

void UNpcBrainComponent::Perceive(const FNpcObservation& Observation)
{
	if (UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem())
	{
		if (bStreamDecisions)
		{
			Runtime->StreamDecision(this, Observation);
		}
		else
		{
			Runtime->RequestDecision(this, Observation);
		}
	}
}

void UNpcBrainComponent::CancelStreamedDecision()
{
	if (UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem())
	{
		Runtime->CancelDecisionStream(this);
	}
}

void UNpcBrainComponent::RecallMemories(const FString& Query, int32 Limit)
{
	UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem();
	if (!Runtime || !Runtime->RecallMemories(this, Query, Limit))
	{
		HandleError(TEXT("RecallMemories: not connected to an npc-runtime server (call Connect on the subsystem)"));
	}
}

bool UNpcBrainComponent::SaveConversation(bool bIncludeKv)
{
	UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem();
	if (!Runtime)
	{
		HandleError(TEXT("SaveConversation: no npc-runtime subsystem"));
		return false;
	}
	return Runtime->SaveSessionFor(this, bIncludeKv);  // reports its own refusals through HandleError
}

bool UNpcBrainComponent::RestoreConversation(const TArray<uint8>& Snapshot)
{
	UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem();
	if (!Runtime)
	{
		HandleError(TEXT("RestoreConversation: no npc-runtime subsystem"));
		return false;
	}
	return Runtime->RestoreSessionFor(this, Snapshot);
}

bool UNpcBrainComponent::Say(const FString& PlayerLine)
{
	if (LocalBrain.IsValid())
	{
		FString Error;
		LocalTurnTokens.Reset();
		LocalTurnText = FString();
		if (!LocalBrain->StartTurnText(PlayerLine, MaxNewTokens, /*bResetContext*/ false, Error))
		{
			HandleError(FString::Printf(TEXT("Say (local brain): %s"), *Error));
			return false;
		}
		return true;
	}
	UNpcRuntimeSubsystem* Runtime = GetRuntimeSubsystem();
	if (!Runtime || !Runtime->SendPlayerLine(this, PlayerLine))
	{
		HandleError(TEXT("Say: no open server session for this NPC yet (is the subsystem connected?)"));
		return false;
	}
	return true;
}

bool UNpcBrainComponent::SayTokens(const TArray<int32>& PromptIds, bool bResetContext)
{
	if (!LocalBrain.IsValid())
	{
		HandleError(TEXT("SayTokens: the local brain is not loaded (set bUseLocalBrain and LocalPackageDir)"));
		return false;
	}
	FString Error;
	if (!LocalBrain->StartTurn(PromptIds, MaxNewTokens, bResetContext, Error))
	{
		HandleError(FString::Printf(TEXT("SayTokens: %s"), *Error));
		return false;
	}
	return true;
}

void UNpcBrainComponent::HandleDialogue(const FString& TextDelta, bool bFinished, const FString& FullText)
{
	OnDialogue.Broadcast(TextDelta, bFinished, FullText);
}

void UNpcBrainComponent::HandleDecision(const FNpcDecision& Decision)
{
	OnAction.Broadcast(Decision);
	if (!Decision.Dialogue.IsEmpty())
	{
		OnDialogue.Broadcast(Decision.Dialogue, true, Decision.Dialogue);
	}
}

void UNpcBrainComponent::HandleStreamAction(const FNpcDecision& Action)
{
	OnNpcAction.Broadcast(Action);
	OnAction.Broadcast(Action);
}

void UNpcBrainComponent::HandleStreamSentence(const FString& Sentence)
{
	OnNpcSentence.Broadcast(Sentence);
}

void UNpcBrainComponent::HandleStreamDone(const FNpcDecision& Decision)
{
	OnNpcDialogueDone.Broadcast(Decision);
	if (!Decision.Dialogue.IsEmpty())
	{
		OnDialogue.Broadcast(Decision.Dialogue, true, Decision.Dialogue);
	}
}

void UNpcBrainComponent::HandleMemories(const TArray<FNpcMemory>& Memories)
{
	OnNpcMemoriesRecalled.Broadcast(Memories);
}

void UNpcBrainComponent::HandleConversationSaved(const TArray<uint8>& Snapshot)
{
	OnConversationSaved.Broadcast(Snapshot);
}

void UNpcBrainComponent::HandleConversationRestored()
{
	OnConversationRestored.Broadcast();
}

void UNpcBrainComponent::HandleError(const FString& Message)
{
	UE_LOG(LogNpcRuntime, Warning, TEXT("%s: %s"), *GetNpcId(), *Message);
	OnBrainError.Broadcast(Message);
}
