using System;
using System.Collections.Generic;
using System.Text;
using NpcRuntime.Unity.Tokenization;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    [TestFixture]
    public sealed class TokenizerTests
    {
        private static ByteLevelBpeTokenizer Load(out Dictionary<string, object> vectors)
        {
            vectors = TestVectors.Load("tokenizer_vectors.json");
            return ByteLevelBpeTokenizer.FromJson(TestVectors.ReadRepoFile((string)vectors["tokenizer"]));
        }

        [Test]
        public void EncodeMatchesHuggingFaceTokenizers()
        {
            Dictionary<string, object> vectors;
            var tok = Load(out vectors);
            foreach (Dictionary<string, object> c in (List<object>)vectors["cases"])
                CollectionAssert.AreEqual(TestVectors.Ints(c["ids"]), tok.Encode((string)c["text"]), "text: " + c["text"]);
        }

        [Test]
        public void DecodeMatchesHuggingFaceTokenizers()
        {
            Dictionary<string, object> vectors;
            var tok = Load(out vectors);
            foreach (Dictionary<string, object> c in (List<object>)vectors["cases"])
            {
                var ids = TestVectors.Ints(c["ids"]);
                Assert.AreEqual((string)c["decoded"], tok.Decode(ids, false));
                Assert.AreEqual((string)c["decoded_skip_special"], tok.Decode(ids, true));
            }
        }

        [Test]
        public void SpecialTokensHaveTheirIds()
        {
            Dictionary<string, object> vectors;
            var tok = Load(out vectors);
            foreach (var pair in (Dictionary<string, object>)vectors["special_ids"])
            {
                Assert.AreEqual((int)(double)pair.Value, tok.TokenToId(pair.Key), pair.Key);
                Assert.IsTrue(tok.IsSpecial((int)(double)pair.Value), pair.Key + " is special");
            }
            Assert.AreEqual((int)(double)vectors["vocab_size"], tok.VocabSize);
        }

        [Test]
        public void StreamingDecodeNeverSplitsACharacter()
        {
            Dictionary<string, object> vectors;
            var tok = Load(out vectors);
            const string text = "emoji 🙂 and 🛡️ shields";
            var ids = tok.Encode(text);
            var decoder = new Utf8StreamDecoder();
            var sb = new StringBuilder();
            foreach (var id in ids)
            {
                string delta = decoder.Push(tok.TokenBytes(id));
                foreach (char ch in delta) Assert.IsFalse(char.IsHighSurrogate(ch) && delta.IndexOf(ch) == delta.Length - 1, "dangling surrogate");
                Assert.IsFalse(delta.Contains("\uFFFD"), "replacement character in a delta");
                sb.Append(delta);
            }
            sb.Append(decoder.Flush());
            Assert.AreEqual(tok.Decode(ids, false), sb.ToString());
            StringAssert.Contains(text, sb.ToString()); // equal, or with the prefix space of add_prefix_space tokenizers
        }

        [Test]
        public void RejectsNonByteLevelTokenizers()
        {
            var error = Assert.Throws<NotSupportedException>(() => ByteLevelBpeTokenizer.FromJson(
                "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}, \"pre_tokenizer\": null}"));
            StringAssert.Contains("Unigram", error.Message);
        }

        [Test]
        public void MalformedJsonNamesTheLine()
        {
            var error = Assert.Throws<FormatException>(() => ByteLevelBpeTokenizer.FromJson("{\n\"model\": [1, 2,\n}"));
            StringAssert.Contains("line 3", error.Message);
        }
    }
}
