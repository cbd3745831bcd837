// Sample: one guard NPC driven by the runtime server, plus a line of dialogue decoded by the server's
// Tick (batched with every other NPC of the frame). Add NpcConnection and NpcAgent to a GameObject, add
// this script, and define NPC_GRPC_NET once Grpc.Net.Client + YetAnotherHttpHandler are installed
// (see the package README). Without the define the sample compiles and tells you what is missing.
using Npc.Proto.V1;
using NpcRuntime.Unity.Agent;
using NpcRuntime.Unity.Net;
using UnityEngine;
#if NPC_GRPC_NET
using Cysharp.Net.Http;
using Grpc.Net.Client;
#endif

namespace NpcRuntime.Unity.Samples
{
    [AddComponentMenu("NPC Runtime/Samples/NPC Demo")]
    public sealed class NpcDemo : MonoBehaviour
    {
        [SerializeField] private string serverUrl = "http://127.0.0.1:50051";
        [SerializeField] private NpcConnection connection;
        [SerializeField] private NpcAgent guard;
        [SerializeField] private string playerLine = "Let me through, I have business in the market.";

        private ServerDialogueSession dialogue;

        private async void Start()
        {
#if NPC_GRPC_NET
            // Grpc.Net.Client over HTTP/2 with Cysharp's YetAnotherHttpHandler (Unity has no HTTP/2 HttpClient).
            var channel = GrpcChannel.ForAddress(serverUrl, new GrpcChannelOptions
            {
                HttpHandler = new YetAnotherHttpHandler { Http2Only = true },
                DisposeHttpClient = true,
            });
            connection.Initialize(channel.CreateCallInvoker());
#else
            Debug.LogWarning("NpcDemo: cannot reach " + serverUrl + ": define NPC_GRPC_NET after installing Grpc.Net.Client and YetAnotherHttpHandler (README), or call NpcConnection.Initialize with your own CallInvoker.");
            if (!connection.IsReady) return;
#endif
            var hello = await connection.Runtime.HandshakeAsync(new HandshakeRequest { ProtocolVersion = "1", ClientName = "unity/" + Application.unityVersion + " npc-demo" });
            if (hello.MaxTickEntries > 0) connection.Batcher.MaxEntriesPerTick = (int)hello.MaxTickEntries;

            guard.onAction.AddListener((action, reason) => Debug.Log("guard does " + action + " (" + reason + ")"));
            guard.onSentence.AddListener(sentence => Debug.Log("guard says (sentence): " + sentence));  // streamed, before the whole line
            guard.onDialogue.AddListener(line => Debug.Log("guard says: " + line));
            guard.Perceive("player_distance", 3.5);
            guard.SetTag("location", "gate");
            guard.Hear(playerLine);

            dialogue = await ServerDialogueSession.OpenAsync(connection.Runtime, connection.Batcher, new OpenSessionRequest
            {
                NpcId = guard.NpcId,
                Prefix = "You are Bram, a stern but loyal guard of the city gate.",
                Prompt = playerLine,
                ApplyChatTemplate = true,
                Limits = new SessionLimits { MaxNewTokens = 48 },
            });
            dialogue.TextReceived += delta => Debug.Log("[stream] " + delta);
            dialogue.TurnFinished += reason => Debug.Log("turn finished: " + reason);
        }

        private void Update()
        {
            // Queue this frame's tick entry; NpcConnection sends all of them as one Tick in LateUpdate.
            if (dialogue != null) dialogue.Advance();
        }
    }
}
