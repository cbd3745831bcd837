using System;
using System.Collections.Generic;
using Google.Protobuf;
using Npc.Proto.V1;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    /// <summary>The generated message code against bytes written by Python protobuf (wire_vectors.json).</summary>
    [TestFixture]
    public sealed class WireTests
    {
        private static readonly Dictionary<string, Func<byte[], IMessage>> Parsers = new Dictionary<string, Func<byte[], IMessage>>
        {
            { "TickRequest", b => TickRequest.Parser.ParseFrom(b) },
            { "TickResponse", b => TickResponse.Parser.ParseFrom(b) },
            { "OpenSessionRequest", b => OpenSessionRequest.Parser.ParseFrom(b) },
            { "GenerateChunk", b => GenerateChunk.Parser.ParseFrom(b) },
            { "HandshakeResponse", b => HandshakeResponse.Parser.ParseFrom(b) },
            { "StepRequest", b => StepRequest.Parser.ParseFrom(b) },
            { "Decision", b => Decision.Parser.ParseFrom(b) },
            { "PlayRequest", b => PlayRequest.Parser.ParseFrom(b) },
            { "PlayResponse", b => PlayResponse.Parser.ParseFrom(b) },
            { "RecallMemoriesRequest", b => RecallMemoriesRequest.Parser.ParseFrom(b) },
            { "RecallMemoriesResponse", b => RecallMemoriesResponse.Parser.ParseFrom(b) },
        };

        private static byte[] Vector(string type)
        {
            foreach (Dictionary<string, object> m in (List<object>)TestVectors.Load("wire_vectors.json")["messages"])
                if ((string)m["type"] == type) return TestVectors.FromHex((string)m["hex"]);
            Assert.Fail("no wire vector for " + type);
            return null;
        }

        [Test]
        public void EveryVectorRoundTripsByteForByte()
        {
            var messages = (List<object>)TestVectors.Load("wire_vectors.json")["messages"];
            Assert.AreEqual(Parsers.Count, messages.Count);
            foreach (Dictionary<string, object> m in messages)
            {
                var hex = (string)m["hex"];
                var parsed = Parsers[(string)m["type"]](TestVectors.FromHex(hex));
                Assert.AreEqual(hex, TestVectors.ToHex(parsed.ToByteArray()), (string)m["type"]);
            }
        }

        [Test]
        public void TickRequestBuiltInCSharpMatchesPython()
        {
            var request = new TickRequest();
            request.Entries.Add(new TickEntry { SessionId = "s-guard-01", BudgetMs = 2.0f, MaxTokens = 8 });
            var constraint = new Constraint { Allowed = new AllowedSequences() };
            constraint.Allowed.Sequences.Add(new[] { "[greet]", "[trade]" });
            request.Entries.Add(new TickEntry { SessionId = "s-merchant-02", BudgetMs = 1.5f, NewInput = "How much for the bread?", Constraint = constraint });
            Assert.AreEqual(TestVectors.ToHex(Vector("TickRequest")), TestVectors.ToHex(request.ToByteArray()));
        }

        [Test]
        public void TickResponseFieldsDecode()
        {
            var response = TickResponse.Parser.ParseFrom(Vector("TickResponse"));
            Assert.AreEqual(3.25f, response.TickMs);
            Assert.AreEqual(2, response.Results.Count);
            CollectionAssert.AreEqual(new uint[] { 17, 300, 2047, 5 }, response.Results[0].TokenIds);
            Assert.AreEqual("Halt, café", response.Results[0].TextDelta);
            Assert.AreEqual(93u, response.Results[0].Stats.ContextTokens);
            Assert.AreEqual(5, response.Results[1].ErrorCode);
            Assert.AreEqual(FinishReason.Error, response.Results[1].FinishReason);
        }

        [Test]
        public void AgentMessagesDecode()
        {
            var step = StepRequest.Parser.ParseFrom(Vector("StepRequest"));
            Assert.AreEqual(1234.5, step.Observation.GameTimeS);
            Assert.AreEqual(3.5, step.Observation.Values["player_distance"]);
            Assert.AreEqual("market", step.Observation.Tags["location"]);
            Assert.IsTrue(step.Events[0].StoryCritical);
            Assert.AreEqual("apple", step.Events[0].Attributes["item"]);

            var decision = Decision.Parser.ParseFrom(Vector("Decision"));
            Assert.AreEqual(DecisionSource.Cloud, decision.Source);
            Assert.AreEqual("player", decision.Arguments["target"]);
            Assert.AreEqual(0.625f, decision.Confidence);

            var open = OpenSessionRequest.Parser.ParseFrom(Vector("OpenSessionRequest"));
            Assert.AreEqual(18446744073709551557UL, open.Sampling.Seed);
            Assert.AreEqual(Constraint.KindOneofCase.JsonSchema, open.Constraint.KindCase);

            var play = PlayRequest.Parser.ParseFrom(Vector("PlayRequest"));
            Assert.AreEqual(RegisterNpcRequest.FsmOneofCase.FsmName, play.Register[0].FsmCase);
            Assert.AreEqual("merchant", play.Register[0].FsmName);
        }

        [Test]
        public void RecallMemoriesMessagesMatchPython()
        {
            var request = new RecallMemoriesRequest { NpcId = "guard-01", Query = "the stolen crown", Limit = 5 };
            Assert.AreEqual(TestVectors.ToHex(Vector("RecallMemoriesRequest")), TestVectors.ToHex(request.ToByteArray()));
            var response = RecallMemoriesResponse.Parser.ParseFrom(Vector("RecallMemoriesResponse"));
            Assert.AreEqual(2, response.Memories.Count);
            Assert.AreEqual(MemoryKind.Observation, response.Memories[0].Kind);
            Assert.AreEqual(MemoryKind.Reflection, response.Memories[1].Kind);
            Assert.AreEqual(1300.25, response.Memories[1].GameTimeS);
            Assert.AreEqual(0.875f, response.Memories[0].Score);
            Assert.AreEqual(7.0f, response.Memories[0].Importance);
        }

        [Test]
        public void TruncatedBytesAreRejected()
        {
            var bytes = Vector("TickRequest");
            Array.Resize(ref bytes, bytes.Length - 3);
            Assert.Throws<InvalidProtocolBufferException>(() => TickRequest.Parser.ParseFrom(bytes));
        }
    }
}
