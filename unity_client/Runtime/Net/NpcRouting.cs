using System.Collections.Concurrent;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// Fleet bookkeeping of one client (docs/deploy.md): which NPC each session belongs to, so that session calls
    /// (Tick, Generate, Cancel, CloseSession, SaveSession) carry that NPC's routing key (gRPC metadata
    /// <c>x-npc-id</c>, the key a proxy hashes on), and which replica answered last (<c>npcrt-replica</c>).
    /// Sessions are learnt from OpenSession / RestoreSession and forgotten when CloseSession succeeds or answers
    /// NOT_FOUND. Thread-safe.
    /// </summary>
    public sealed class NpcRouting
    {
        public const string RoutingKeyHeader = "x-npc-id";
        public const string ReplicaHeader = "npcrt-replica";

        private readonly ConcurrentDictionary<string, string> npcBySession = new ConcurrentDictionary<string, string>();
        private volatile string lastReplica = "";

        /// <summary><c>npcrt-replica</c> of the latest response (for logs: which replica answered); "" before any.</summary>
        public string LastReplica { get { return lastReplica; } }

        /// <summary>The NPC a session belongs to; "" when unknown (its calls then carry no routing key).</summary>
        public string NpcOf(string sessionId)
        {
            string npcId;
            return sessionId != null && npcBySession.TryGetValue(sessionId, out npcId) ? npcId : "";
        }

        /// <summary>Records the NPC of a session (one opened by another client object, for instance).</summary>
        public void Remember(string sessionId, string npcId)
        {
            if (string.IsNullOrEmpty(sessionId)) return;
            if (string.IsNullOrEmpty(npcId)) Forget(sessionId);
            else npcBySession[sessionId] = npcId;
        }

        public void Forget(string sessionId)
        {
            string unused;
            if (sessionId != null) npcBySession.TryRemove(sessionId, out unused);
        }

        /// <summary>
        /// The routing key of a Tick: the NPC of its sessions when they all belong to one NPC; "" when they belong to
        /// several (the proxy then picks any replica: a fleet client ticks per NPC, TickBatcher.OneTickPerNpc).
        /// </summary>
        public string TickKey(TickRequest request)
        {
            string key = "";
            foreach (var entry in request.Entries)
            {
                string npcId = NpcOf(entry.SessionId);
                if (npcId.Length == 0 || (key.Length > 0 && key != npcId)) return "";
                key = npcId;
            }
            return key;
        }

        /// <summary>Reads npcrt-replica from a call's response headers once they are in (now or later).</summary>
        internal void NoteReplica(Task<Metadata> headers)
        {
            if (headers == null) return;
            if (headers.IsCompleted) Read(headers);
            else headers.ContinueWith(Read, TaskContinuationOptions.ExecuteSynchronously);
        }

        private void Read(Task<Metadata> headers)
        {
            if (headers.IsFaulted) { var ignored = headers.Exception; return; }   // observed: the call's own error is what matters
            if (headers.IsCanceled || headers.Result == null) return;
            string replica = headers.Result.GetValue(ReplicaHeader);
            if (!string.IsNullOrEmpty(replica)) lastReplica = replica;
        }
    }
}
