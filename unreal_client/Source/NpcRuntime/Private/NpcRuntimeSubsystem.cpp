#include "NpcRuntimeSubsystem.h"

#include "Async/Async.h"
#include "NpcBrainComponent.h"
#include "NpcRuntimeModule.h"

#include <string>
#include <utility>

namespace
{
	std::string ToUtf8(const FString& Text)
	{
		return std::string(TCHAR_TO_UTF8(*Text));
	}

	FString FromUtf8(const std::string& Text)
	{
		return FString(UTF8_TO_TCHAR(Text.c_str()));
	}

	FString Describe(const npc::Status& Status)
	{
		return FromUtf8(Status.ToString());
	}

	FNpcDecision ToDecision(const npc::DecisionInfo& In)
	{
		FNpcDecision Out;
		Out.State = FromUtf8(In.state);
		Out.Action = FromUtf8(In.action);
		for (const auto& Pair : In.arguments)
		{
			Out.Arguments.Add(FromUtf8(Pair.first), FromUtf8(Pair.second));
		}
		Out.Dialogue = FromUtf8(In.dialogue);
		Out.Confidence = In.confidence;
		Out.bEscalated = In.escalated;
		Out.Reason = FromUtf8(In.reason);
		return Out;
	}

	/** A streamed action as a decision without its line (Dialogue and Reason come with done). */
	FNpcDecision ToDecision(const npc::ActionChosenInfo& In)
	{
		FNpcDecision Out;
		Out.State = FromUtf8(In.state);
		Out.Action = FromUtf8(In.action);
		for (const auto& Pair : In.arguments)
		{
			Out.Arguments.Add(FromUtf8(Pair.first), FromUtf8(Pair.second));
		}
		Out.Confidence = In.confidence;
		Out.bEscalated = In.escalated;
		return Out;
	}

	FNpcMemory ToMemory(const npc::MemoryInfo& In)
	{
		FNpcMemory Out;
		Out.Text = FromUtf8(In.text);
		Out.Importance = In.importance;
		Out.GameTimeSeconds = In.game_time_s;
		const int32 Kind = static_cast<int32>(In.kind);
		// A kind from a newer contract reads as Unspecified.
		Out.Kind = (Kind >= 0 && Kind <= static_cast<int32>(ENpcMemoryKind::Escalation)) ? static_cast<ENpcMemoryKind>(Kind) : ENpcMemoryKind::Unspecified;
		Out.Score = In.score;
		return Out;
	}
}

void FNpcStreamInbox::Push(FNpcStreamEvent Event)
{
	std::lock_guard<std::mutex> Lock(Mutex);
	Events.push_back(std::move(Event));
}

std::vector<FNpcStreamEvent> FNpcStreamInbox::TakeAll()
{
	std::lock_guard<std::mutex> Lock(Mutex);
	std::vector<FNpcStreamEvent> Taken;
	Taken.swap(Events);
	return Taken;
}

void UNpcRuntimeSubsystem::Initialize(FSubsystemCollectionBase& Collection)
{
	Super::Initialize(Collection);
	StreamInbox = MakeShared<FNpcStreamInbox>();
}

void UNpcRuntimeSubsystem::Deinitialize()
{
	for (const UE::Tasks::TTask<FNpcTickJob>& Task : TicksInFlight)
	{
		Task.Wait();
	}
	TicksInFlight.Reset();
	for (const TPair<FString, FNpcActiveStream>& Pair : ActiveStreams)
	{
		Pair.Value.Cancel->Cancel();  // the workers return at once; their queued events are dropped
	}
	ActiveStreams.Reset();
	TArray<FString> NpcIds;
	Brains.GetKeys(NpcIds);
	for (const FString& NpcId : NpcIds)
	{
		const std::string SessionId = Book.Remove(ToUtf8(NpcId));
		if (!SessionId.empty() && Client.IsValid())
		{
			// Best effort at shutdown, off the game thread; the server's idle timeout covers the rest.
			TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
			UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, SessionId]() { Worker->CloseSession(SessionId, nullptr); });
		}
	}
	Brains.Reset();
	Client.Reset();
	bConnected = false;
	Super::Deinitialize();
}

TStatId UNpcRuntimeSubsystem::GetStatId() const
{
	RETURN_QUICK_DECLARE_CYCLE_STAT(UNpcRuntimeSubsystem, STATGROUP_Tickables);
}

ETickableTickType UNpcRuntimeSubsystem::GetTickableTickType() const
{
	// The class default object never ticks; instances tick while connected (IsTickable).
	return IsTemplate() ? ETickableTickType::Never : ETickableTickType::Conditional;
}

bool UNpcRuntimeSubsystem::IsTickable() const
{
	return bConnected || TicksInFlight.Num() > 0 || ActiveStreams.Num() > 0;
}

void UNpcRuntimeSubsystem::Connect(const FString& Target, const FString& BearerToken)
{
	npc::ClientOptions Options;
	Options.target = ToUtf8(Target);
	Options.bearer_token = ToUtf8(BearerToken);
	Options.client_name = "unreal npc-client/0.1";
	Options.send_routing_key = bSendRoutingKey;
	Client = MakeShared<npc::NpcRuntimeClient>(Options);
	bConnected = false;

	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcRuntimeSubsystem> WeakThis(this);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakThis, Target]()
	{
		npc::HandshakeInfo Info;
		const npc::Status Status = Worker->Handshake(&Info);
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Status, Info, Target]()
		{
			UNpcRuntimeSubsystem* Self = WeakThis.Get();
			if (!Self)
			{
				return;
			}
			if (!Status.ok())
			{
				UE_LOG(LogNpcRuntime, Error, TEXT("cannot connect to npc-runtime at %s: %s"), *Target, *Describe(Status));
				return;
			}
			Self->bConnected = true;
			Self->MaxTickEntries = Info.max_tick_entries;
			UE_LOG(LogNpcRuntime, Log, TEXT("connected to npc-runtime %s at %s"), *FromUtf8(Info.server_version), *Target);
			// Brains that registered before the handshake finished open their sessions now.
			for (const TPair<FString, TWeakObjectPtr<UNpcBrainComponent>>& Pair : Self->Brains)
			{
				if (UNpcBrainComponent* Brain = Pair.Value.Get())
				{
					if (!Self->Book.Find(ToUtf8(Pair.Key)))
					{
						Self->OpenSessionFor(Brain);
					}
				}
			}
		});
	});
}

void UNpcRuntimeSubsystem::OpenSessionFor(UNpcBrainComponent* Brain)
{
	if (!Brain)
	{
		return;
	}
	const FString NpcId = Brain->GetNpcId();
	Brains.Add(NpcId, Brain);
	if (!HasClient() || !bConnected)
	{
		return;  // opened once the handshake completes
	}
	npc::OpenSessionOptions Options;
	Options.model = ToUtf8(Brain->Model);
	Options.npc_id = ToUtf8(NpcId);
	Options.prefix = ToUtf8(Brain->Persona);
	Options.prompt = ToUtf8(Brain->OpeningPrompt);
	Options.max_new_tokens = static_cast<uint32>(FMath::Max(0, Brain->MaxNewTokens));
	Options.apply_chat_template = Brain->bApplyChatTemplate;

	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcRuntimeSubsystem> WeakThis(this);
	TWeakObjectPtr<UNpcBrainComponent> WeakBrain(Brain);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakThis, WeakBrain, Options, NpcId]()
	{
		npc::OpenedSession Opened;
		const npc::Status Status = Worker->OpenSession(Options, &Opened);
		AsyncTask(ENamedThreads::GameThread, [WeakThis, WeakBrain, Status, Opened, NpcId, Worker]()
		{
			UNpcRuntimeSubsystem* Self = WeakThis.Get();
			UNpcBrainComponent* Brain = WeakBrain.Get();
			if (!Self || !Brain)
			{
				if (Status.ok())
				{
					// Nobody wants it any more: close it (on a worker, never on the game thread).
					const std::string SessionId = Opened.session_id;
					UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, SessionId]() { Worker->CloseSession(SessionId, nullptr); });
				}
				return;
			}
			if (!Status.ok())
			{
				Brain->HandleError(FString::Printf(TEXT("OpenSession failed: %s"), *Describe(Status)));
				return;
			}
			Self->Book.Add(ToUtf8(NpcId), Opened.session_id);
		});
	});
}

bool UNpcRuntimeSubsystem::SendPlayerLine(UNpcBrainComponent* Brain, const FString& Line)
{
	return Brain && Book.QueueInput(ToUtf8(Brain->GetNpcId()), ToUtf8(Line));
}

npc::StepOptions UNpcRuntimeSubsystem::StepOptionsFor(UNpcBrainComponent* Brain, const FNpcObservation& Observation) const
{
	npc::StepOptions Options;
	Options.npc_id = ToUtf8(Brain->GetNpcId());
	Options.game_time_s = Observation.GameTimeSeconds;
	for (const TPair<FString, double>& Pair : Observation.Values)
	{
		Options.values[ToUtf8(Pair.Key)] = Pair.Value;
	}
	for (const TPair<FString, FString>& Pair : Observation.Tags)
	{
		Options.tags[ToUtf8(Pair.Key)] = ToUtf8(Pair.Value);
	}
	Options.player_utterance = ToUtf8(Observation.PlayerUtterance);
	if (!Observation.EventKind.IsEmpty())
	{
		npc::GameEventInfo Event;
		Event.kind = ToUtf8(Observation.EventKind);
		Event.description = ToUtf8(Observation.EventDescription);
		Event.story_critical = Observation.bStoryCritical;
		Options.events.push_back(Event);
	}
	Options.deadline_ms = Brain->DecisionDeadlineMs;
	return Options;
}

void UNpcRuntimeSubsystem::RequestDecision(UNpcBrainComponent* Brain, const FNpcObservation& Observation)
{
	if (!Brain || !HasClient())
	{
		return;
	}
	const npc::StepOptions Options = StepOptionsFor(Brain, Observation);
	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcBrainComponent> WeakBrain(Brain);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakBrain, Options]()
	{
		npc::DecisionInfo Decision;
		const npc::Status Status = Worker->Step(Options, &Decision);
		AsyncTask(ENamedThreads::GameThread, [WeakBrain, Status, Decision]()
		{
			if (UNpcBrainComponent* Brain = WeakBrain.Get())
			{
				if (Status.ok())
				{
					Brain->HandleDecision(ToDecision(Decision));
				}
				else
				{
					Brain->HandleError(FString::Printf(TEXT("Step failed: %s"), *Describe(Status)));
				}
			}
		});
	});
}

void UNpcRuntimeSubsystem::StreamDecision(UNpcBrainComponent* Brain, const FNpcObservation& Observation)
{
	if (!Brain || !HasClient())
	{
		return;
	}
	CancelDecisionStream(Brain);  // a new decision replaces the line still streaming
	FNpcActiveStream Stream;
	Stream.Serial = NextStreamSerial++;
	Stream.Cancel = MakeShared<npc::CancelToken>();
	Stream.Brain = Brain;
	Stream.Observation = Observation;
	ActiveStreams.Add(Brain->GetNpcId(), Stream);

	const npc::StepOptions Options = StepOptionsFor(Brain, Observation);
	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TSharedPtr<FNpcStreamInbox> Inbox = StreamInbox;
	TSharedPtr<npc::CancelToken> Cancel = Stream.Cancel;
	const uint64 Serial = Stream.Serial;
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, Inbox, Cancel, Options, Serial]()
	{
		const auto MakeEvent = [&Options, Serial](FNpcStreamEvent::EKind Kind)
		{
			FNpcStreamEvent Event;
			Event.Kind = Kind;
			Event.NpcId = Options.npc_id;
			Event.Serial = Serial;
			return Event;
		};
		npc::StepStreamCallbacks Callbacks;
		Callbacks.on_action = [&](const npc::ActionChosenInfo& Action)
		{
			FNpcStreamEvent Event = MakeEvent(FNpcStreamEvent::EKind::Action);
			Event.Action = Action;
			Inbox->Push(std::move(Event));
		};
		Callbacks.on_sentence = [&](const std::string& Sentence)
		{
			FNpcStreamEvent Event = MakeEvent(FNpcStreamEvent::EKind::Sentence);
			Event.Sentence = Sentence;
			Inbox->Push(std::move(Event));
		};
		Callbacks.on_done = [&](const npc::DecisionInfo& Decision)
		{
			FNpcStreamEvent Event = MakeEvent(FNpcStreamEvent::EKind::Done);
			Event.Decision = Decision;
			Inbox->Push(std::move(Event));
		};
		const npc::Status Status = Worker->StepStream(Options, Callbacks, Cancel.Get());
		if (!Status.ok() && Status.code != npc::StatusCode::kCancelled)
		{
			FNpcStreamEvent Event = MakeEvent(FNpcStreamEvent::EKind::Failed);
			Event.Status = Status;
			Inbox->Push(std::move(Event));
		}
	});
}

void UNpcRuntimeSubsystem::CancelDecisionStream(UNpcBrainComponent* Brain)
{
	if (!Brain)
	{
		return;
	}
	const FString NpcId = Brain->GetNpcId();
	if (FNpcActiveStream* Active = ActiveStreams.Find(NpcId))
	{
		Active->Cancel->Cancel();
		ActiveStreams.Remove(NpcId);
	}
}

void UNpcRuntimeSubsystem::DispatchStreamEvents()
{
	if (!StreamInbox.IsValid())
	{
		return;
	}
	for (FNpcStreamEvent& Event : StreamInbox->TakeAll())
	{
		const FString NpcId = FromUtf8(Event.NpcId);
		FNpcActiveStream* Active = ActiveStreams.Find(NpcId);
		if (!Active || Active->Serial != Event.Serial)
		{
			continue;  // stopped or replaced since: its late events are dropped
		}
		UNpcBrainComponent* Brain = Active->Brain.Get();
		switch (Event.Kind)
		{
		case FNpcStreamEvent::EKind::Action:
			if (Brain)
			{
				Brain->HandleStreamAction(ToDecision(Event.Action));
			}
			break;
		case FNpcStreamEvent::EKind::Sentence:
			if (Brain)
			{
				Brain->HandleStreamSentence(FromUtf8(Event.Sentence));
			}
			break;
		case FNpcStreamEvent::EKind::Done:
			ActiveStreams.Remove(NpcId);
			if (Brain)
			{
				Brain->HandleStreamDone(ToDecision(Event.Decision));
			}
			break;
		case FNpcStreamEvent::EKind::Failed:
		{
			const FNpcObservation Observation = Active->Observation;
			ActiveStreams.Remove(NpcId);
			if (!Brain)
			{
				break;
			}
			if (Event.Status.code == npc::StatusCode::kUnimplemented)
			{
				// A server without StepStream (raised before any chunk): decide with Step from now on.
				UE_LOG(LogNpcRuntime, Warning, TEXT("%s: the server has no StepStream (%s); using Step"), *NpcId, *Describe(Event.Status));
				Brain->bStreamDecisions = false;
				RequestDecision(Brain, Observation);
			}
			else
			{
				Brain->HandleError(FString::Printf(TEXT("StepStream failed: %s"), *Describe(Event.Status)));
			}
			break;
		}
		}
	}
}

bool UNpcRuntimeSubsystem::RecallMemories(UNpcBrainComponent* Brain, const FString& Query, int32 Limit)
{
	if (!Brain || !HasClient())
	{
		return false;
	}
	npc::RecallOptions Options;
	Options.npc_id = ToUtf8(Brain->GetNpcId());
	Options.query = ToUtf8(Query);
	Options.limit = static_cast<uint32>(FMath::Max(0, Limit));
	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcBrainComponent> WeakBrain(Brain);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakBrain, Options]()
	{
		std::vector<npc::MemoryInfo> Memories;
		const npc::Status Status = Worker->RecallMemories(Options, &Memories);
		AsyncTask(ENamedThreads::GameThread, [WeakBrain, Status, Memories]()
		{
			UNpcBrainComponent* Brain = WeakBrain.Get();
			if (!Brain)
			{
				return;
			}
			if (!Status.ok())
			{
				Brain->HandleError(FString::Printf(TEXT("RecallMemories failed: %s"), *Describe(Status)));
				return;
			}
			TArray<FNpcMemory> Out;
			for (const npc::MemoryInfo& Memory : Memories)
			{
				Out.Add(ToMemory(Memory));
			}
			Brain->HandleMemories(Out);
		});
	});
	return true;
}

void UNpcRuntimeSubsystem::Release(UNpcBrainComponent* Brain)
{
	if (!Brain)
	{
		return;
	}
	CancelDecisionStream(Brain);
	const FString NpcId = Brain->GetNpcId();
	Brains.Remove(NpcId);
	const std::string SessionId = Book.Remove(ToUtf8(NpcId));
	if (!SessionId.empty() && HasClient())
	{
		TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
		UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, SessionId]() { Worker->CloseSession(SessionId, nullptr); });
	}
}

void UNpcRuntimeSubsystem::Tick(float /*DeltaTime*/)
{
	DispatchStreamEvents();
	for (const UE::Tasks::TTask<FNpcTickJob>& Task : TicksInFlight)
	{
		if (!Task.IsCompleted())
		{
			return;  // last frame's Tick is still on the wire: at most one frame in flight
		}
	}
	for (UE::Tasks::TTask<FNpcTickJob>& Task : TicksInFlight)
	{
		ApplyTickJob(Task.GetResult());
	}
	TicksInFlight.Reset();
	if (bConnected)
	{
		StartTickJob();
	}
}

void UNpcRuntimeSubsystem::StartTickJob()
{
	npc::TickPlan Plan = Book.BuildTick(ServerBudgetMs, static_cast<uint32>(FMath::Max(0, MaxTokensPerNpcPerFrame)), MaxTickEntries);
	if (Plan.entries.empty())
	{
		return;
	}
	// A fleet ticks per NPC (each call routed to the NPC's replica by its x-npc-id), the calls in parallel.
	std::vector<npc::TickPlan> Plans;
	if (bTickPerNpc)
	{
		Plans = npc::SplitTickByNpc(Plan);
	}
	else
	{
		Plans.push_back(std::move(Plan));
	}
	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	for (npc::TickPlan& One : Plans)
	{
		TicksInFlight.Add(UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, One = std::move(One)]()
		{
			FNpcTickJob Job;
			Job.Plan = One;
			Job.Status = Worker->Tick(One.entries, &Job.Outcome);
			return Job;
		}));
	}
}

void UNpcRuntimeSubsystem::ApplyTickJob(FNpcTickJob& Job)
{
	if (!Job.Status.ok())
	{
		Book.ApplyTickFailure(Job.Plan);
		UE_LOG(LogNpcRuntime, Warning, TEXT("Tick failed: %s"), *Describe(Job.Status));
		if (Job.Status.code == npc::StatusCode::kUnavailable || Job.Status.code == npc::StatusCode::kUnauthenticated)
		{
			bConnected = false;  // reconnect with Connect(); sessions are re-opened then
		}
		return;
	}
	for (const npc::SessionEvent& Event : Book.ApplyTick(Job.Plan, Job.Outcome))
	{
		const TWeakObjectPtr<UNpcBrainComponent>* Found = Brains.Find(FromUtf8(Event.npc_id));
		UNpcBrainComponent* Brain = Found ? Found->Get() : nullptr;
		if (!Brain)
		{
			continue;
		}
		switch (Event.kind)
		{
		case npc::SessionEventKind::kDelta:
			Brain->HandleDialogue(FromUtf8(Event.text), false, FString());
			break;
		case npc::SessionEventKind::kFinished:
			Brain->HandleDialogue(FString(), true, FromUtf8(Event.text));
			break;
		case npc::SessionEventKind::kLost:
			Brain->HandleError(FString::Printf(TEXT("session lost (%s): reopening"), *FromUtf8(Event.text)));
			Book.Remove(Event.npc_id);
			OpenSessionFor(Brain);
			break;
		case npc::SessionEventKind::kEntryError:
			Brain->HandleError(FromUtf8(Event.text));
			break;
		}
	}
}
