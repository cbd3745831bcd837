using System;
using System.Threading.Tasks;
using Grpc.Core;
using NpcRuntime.Unity.Net;
using UnityEngine;

namespace NpcRuntime.Unity.Agent
{
    /// <summary>
    /// One per scene: owns the gRPC clients and the per-frame tick batcher, and flushes the batcher once per
    /// frame from LateUpdate, after every NpcAgent has queued its work in Update. The transport is plugged in
    /// with <see cref="Initialize"/>: pass any Grpc.Core.CallInvoker (README: Grpc.Net.Client +
    /// YetAnotherHttpHandler, or the legacy Grpc.Core channel).
    /// </summary>
    [AddComponentMenu("NPC Runtime/NPC Connection")]
    [DisallowMultipleComponent]
    public sealed class NpcConnection : MonoBehaviour
    {
        [Tooltip("Bearer token of the runtime server (npcrt serve --token); empty for none.")]
        [SerializeField] private string bearerToken = "";
        [Tooltip("Deadline of unary calls, seconds.")]
        [SerializeField] private float unaryDeadlineSeconds = 5f;

        public NpcRuntimeClient Runtime { get; private set; }
        public NpcAgentClient Agent { get; private set; }
        public TickBatcher Batcher { get; private set; }
        public bool IsReady { get { return Runtime != null; } }

        public void Initialize(CallInvoker invoker)
        {
            var options = new NpcClientOptions
            {
                BearerToken = bearerToken,
                UnaryDeadline = TimeSpan.FromSeconds(Math.Max(0.01f, unaryDeadlineSeconds)),
            };
            Runtime = new NpcRuntimeClient(invoker, options);
            Agent = new NpcAgentClient(invoker, options);
            Batcher = new TickBatcher(Runtime);
        }

        private void LateUpdate()
        {
            if (Batcher == null) return;
            Observe(Batcher.Flush());
        }

        internal static async void Observe(Task task)
        {
            try { await task; }
            catch (Exception error) { Debug.LogException(error); }
        }
    }
}
