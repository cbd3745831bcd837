// Save-games and fleet accessors of UNpcRuntimeSubsystem (declared in NpcRuntimeSubsystem.h): an NPC's server
// conversation as snapshot bytes (NpcRuntime.SaveSession) and back (NpcRuntime.RestoreSession), and the
// replica that answered last. The network calls run on worker tasks; results reach the brain on the game thread.
#include "Async/Async.h"
#include "HAL/PlatformTime.h"
#include "NpcBrainComponent.h"
#include "NpcRuntimeModule.h"
#include "NpcRuntimeSubsystem.h"

#include <string>
#include <utility>

// Named, not anonymous: an Unreal unity build may put this file in one translation unit with
// NpcRuntimeSubsystem.cpp, whose anonymous helpers have the short names.
namespace NpcSaveGame
{
	std::string Utf8(const FString& Text)
	{
		return std::string(TCHAR_TO_UTF8(*Text));
	}

	FString Text(const std::string& Utf8Text)
	{
		return FString(UTF8_TO_TCHAR(Utf8Text.c_str()));
	}
}

FString UNpcRuntimeSubsystem::GetLastReplica() const
{
	return Client.IsValid() ? NpcSaveGame::Text(Client->last_replica()) : FString();
}

bool UNpcRuntimeSubsystem::SaveSessionFor(UNpcBrainComponent* Brain, bool bIncludeKv)
{
	if (!Brain)
	{
		return false;
	}
	if (!HasClient())
	{
		Brain->HandleError(TEXT("SaveConversation: not connected to an npc-runtime server (call Connect on the subsystem)"));
		return false;
	}
	const npc::SessionRecord* Record = Book.Find(NpcSaveGame::Utf8(Brain->GetNpcId()));
	// Between turns only: the restore then starts idle, waiting for the next line (as the book expects).
	if (!Record || Record->state != npc::SessionState::kIdle)
	{
		Brain->HandleError(Record ? TEXT("SaveConversation: a turn is still running; save once it has finished (OnDialogue with bFinished)")
		                          : TEXT("SaveConversation: this NPC has no server conversation to save"));
		return false;
	}
	const std::string SessionId = Record->session_id;
	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcBrainComponent> WeakBrain(Brain);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakBrain, SessionId, bIncludeKv]()
	{
		npc::SessionSnapshotInfo Snapshot;
		const npc::Status Status = Worker->SaveSession(SessionId, bIncludeKv, &Snapshot);
		AsyncTask(ENamedThreads::GameThread, [WeakBrain, Status, Snapshot = std::move(Snapshot)]()
		{
			UNpcBrainComponent* Brain = WeakBrain.Get();
			if (!Brain)
			{
				return;
			}
			if (!Status.ok())
			{
				Brain->HandleError(FString::Printf(TEXT("SaveSession failed: %s"), *NpcSaveGame::Text(Status.ToString())));
				return;
			}
			TArray<uint8> Bytes;
			Bytes.Append(Snapshot.data.data(), static_cast<int32>(Snapshot.data.size()));
			Brain->HandleConversationSaved(Bytes);
		});
	});
	return true;
}

bool UNpcRuntimeSubsystem::RestoreSessionFor(UNpcBrainComponent* Brain, const TArray<uint8>& Snapshot)
{
	if (!Brain)
	{
		return false;
	}
	if (!HasClient() || !bConnected)
	{
		Brain->HandleError(TEXT("RestoreConversation: not connected to an npc-runtime server (call Connect, wait for it)"));
		return false;
	}
	if (Snapshot.Num() == 0)
	{
		Brain->HandleError(TEXT("RestoreConversation: the snapshot is empty (pass the bytes of OnConversationSaved)"));
		return false;
	}
	const FString NpcId = Brain->GetNpcId();
	Brains.Add(NpcId, Brain);
	npc::RestoreSessionOptions Options;
	Options.snapshot.assign(Snapshot.GetData(), Snapshot.GetData() + Snapshot.Num());
	Options.npc_id = NpcSaveGame::Utf8(NpcId);
	// A new id: the saved session may still be open (a save loaded in the same run, or on this replica).
	Options.session_id = Options.npc_id + "-restored-" + std::to_string(NextRestoreSerial++) + "-" +
	                     std::to_string(static_cast<long long>(FPlatformTime::Seconds() * 1000.0));

	TSharedPtr<npc::NpcRuntimeClient> Worker = Client;
	TWeakObjectPtr<UNpcRuntimeSubsystem> WeakThis(this);
	TWeakObjectPtr<UNpcBrainComponent> WeakBrain(Brain);
	UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, WeakThis, WeakBrain, Options = std::move(Options)]()
	{
		npc::OpenedSession Opened;
		const npc::Status Status = Worker->RestoreSession(Options, &Opened);
		AsyncTask(ENamedThreads::GameThread, [WeakThis, WeakBrain, Worker, Status, Opened, NpcId = Options.npc_id]()
		{
			UNpcRuntimeSubsystem* Self = WeakThis.Get();
			UNpcBrainComponent* Brain = WeakBrain.Get();
			if (!Self || !Brain)
			{
				if (Status.ok())
				{
					const std::string SessionId = Opened.session_id;  // nobody wants it any more
					UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, SessionId]() { Worker->CloseSession(SessionId, nullptr); });
				}
				return;
			}
			if (!Status.ok())
			{
				Brain->HandleError(FString::Printf(TEXT("RestoreSession failed: %s"), *NpcSaveGame::Text(Status.ToString())));
				return;
			}
			const std::string Replaced = Self->Book.Remove(NpcId);
			if (!Replaced.empty() && Replaced != Opened.session_id)
			{
				UE::Tasks::Launch(UE_SOURCE_LOCATION, [Worker, Replaced]() { Worker->CloseSession(Replaced, nullptr); });
			}
			// Saved between turns (SaveSessionFor): it waits for the NPC's next line.
			Self->Book.Add(NpcId, Opened.session_id, npc::SessionState::kIdle);
			Brain->HandleConversationRestored();
		});
	});
	return true;
}
