using System;
using System.Text;
using Npc.Proto.V1;

namespace NpcRuntime.Unity.Net
{
    /// <summary>
    /// Turns the chunks of one NpcAgent.StepStream into action / sentence / done events by the rule every
    /// client shares (clients_test/vectors/README.md, checked against stream_vectors.json):
    /// the first chunk must be the action; dialogue deltas accumulate until one has sentence_end, and the
    /// accumulated text (exactly, spaces kept) is one sentence; done raises what is left as a last sentence,
    /// then done. A chunk with no known kind (a newer server's) is skipped; any other order is a protocol
    /// error (InvalidOperationException), and so is a stream that ends before done.
    /// Engine-free and synchronous: <see cref="NpcDialogueStream"/> feeds it from the gRPC stream.
    /// </summary>
    public sealed class StepStreamAssembler
    {
        private readonly StringBuilder buffer = new StringBuilder();

        public event Action<ActionChosen> ActionReceived;
        public event Action<string> SentenceReceived;
        public event Action<Decision> DoneReceived;

        /// <summary>The action chunk, once it arrived.</summary>
        public ActionChosen Action { get; private set; }
        /// <summary>The final decision, once done arrived.</summary>
        public Decision Decision { get; private set; }
        public bool IsDone { get { return Decision != null; } }
        /// <summary>Sentences raised so far.</summary>
        public int Sentences { get; private set; }

        /// <summary>Feeds the next chunk; returns true when it was done (read nothing more).</summary>
        public bool Accept(StepChunk chunk)
        {
            if (chunk == null) throw new ArgumentNullException("chunk");
            if (IsDone) throw Violation("a chunk after done");
            switch (chunk.ChunkCase)
            {
                case StepChunk.ChunkOneofCase.None:
                    return false;  // a chunk kind from a newer contract: nothing to raise
                case StepChunk.ChunkOneofCase.Action:
                    if (Action != null) throw Violation("a second action chunk");
                    Action = chunk.Action;
                    if (ActionReceived != null) ActionReceived(Action);
                    return false;
                case StepChunk.ChunkOneofCase.Dialogue:
                    if (Action == null) throw Violation("a dialogue chunk before the action");
                    buffer.Append(chunk.Dialogue.Text);
                    if (chunk.Dialogue.SentenceEnd) FlushSentence();
                    return false;
                case StepChunk.ChunkOneofCase.Done:
                    if (Action == null) throw Violation("the done chunk before the action");
                    FlushSentence();  // a line whose end the server did not mark
                    Decision = chunk.Done;
                    if (DoneReceived != null) DoneReceived(Decision);
                    return true;
                default:
                    return false;
            }
        }

        /// <summary>Call when the server ended the stream without an error: throws unless done arrived.</summary>
        public void End()
        {
            if (!IsDone) throw Violation(Action == null ? "the stream ended before the action" : "the stream ended before done");
        }

        private void FlushSentence()
        {
            if (buffer.Length == 0) return;
            var sentence = buffer.ToString();
            buffer.Length = 0;
            Sentences++;
            if (SentenceReceived != null) SentenceReceived(sentence);
        }

        private static InvalidOperationException Violation(string what)
        {
            return new InvalidOperationException("StepStream protocol error: " + what +
                " (expected one action, dialogue deltas, then done; see proto/npc_proto/v1/agent.proto)");
        }
    }
}
