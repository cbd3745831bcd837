using System;
using System.Collections.Generic;
using System.Text;
using System.Text.RegularExpressions;
using NpcRuntime.Unity.Json;

namespace NpcRuntime.Unity.Tokenization
{
    /// <summary>
    /// Byte-level BPE tokenizer reading a Hugging Face `tokenizers` tokenizer.json (GPT-2 / Llama-3 /
    /// Qwen2 style, and the built-in npc-dialogue tokenizer): added/special tokens are split out first,
    /// the rest goes through the ByteLevel pre-tokenizer (GPT-2 split regex, bytes mapped to printable
    /// characters) and BPE merges by rank. Ids match `tokenizers.Tokenizer.encode(text).ids`
    /// (checked against clients_test/vectors/tokenizer_vectors.json).
    /// Supported: model BPE; pre_tokenizer ByteLevel (or a Sequence holding only ByteLevel); normalizer
    /// null; decoder ByteLevel. Anything else is rejected with an error naming the field.
    /// </summary>
    public sealed class ByteLevelBpeTokenizer
    {
        // The GPT-2 split pattern used by tokenizers' ByteLevel pre-tokenizer (use_regex = true).
        private static readonly Regex SplitPattern = new Regex(
            @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled);

        private static readonly char[] ByteToChar = BuildByteToChar();
        private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

        private readonly Dictionary<string, int> vocab;
        private readonly string[] idToToken;
        private readonly Dictionary<long, int> mergeRanks = new Dictionary<long, int>(); // (leftId, rightId) -> rank
        private readonly Dictionary<string, int> added = new Dictionary<string, int>();   // content -> id
        private readonly HashSet<int> specialIds = new HashSet<int>();
        private readonly List<string> addedByLength = new List<string>();
        private readonly bool addPrefixSpace;
        private readonly bool useRegex;
        private readonly bool ignoreMerges;
        private readonly Dictionary<string, int[]> cache = new Dictionary<string, int[]>();

        public int VocabSize { get { return idToToken.Length; } }

        public static ByteLevelBpeTokenizer FromJson(string tokenizerJson)
        {
            return new ByteLevelBpeTokenizer(MiniJson.ParseObject(tokenizerJson, "tokenizer.json"));
        }

        private ByteLevelBpeTokenizer(Dictionary<string, object> root)
        {
            const string where = "tokenizer.json";
            var model = JsonFields.Obj(root, "model", where);
            string modelType = JsonFields.OptStr(model, "type", "BPE");
            if (modelType != "BPE") throw new NotSupportedException(where + ": model.type '" + modelType + "' is not supported (only BPE)");
            object normalizer;
            if (root.TryGetValue("normalizer", out normalizer) && normalizer != null)
                throw new NotSupportedException(where + ": a normalizer is not supported (byte-level BPE tokenizers have none)");

            var pre = JsonFields.OptObj(root, "pre_tokenizer");
            var byteLevel = FindByteLevel(pre);
            if (byteLevel == null) throw new NotSupportedException(where + ": pre_tokenizer must be ByteLevel");
            addPrefixSpace = OptBool(byteLevel, "add_prefix_space", false);
            useRegex = OptBool(byteLevel, "use_regex", true);
            ignoreMerges = OptBool(model, "ignore_merges", false);

            var vocabObj = JsonFields.Obj(model, "vocab", where + " model");
            vocab = new Dictionary<string, int>(vocabObj.Count);
            int maxId = -1;
            foreach (var pair in vocabObj)
            {
                int id = (int)(double)pair.Value;
                vocab[pair.Key] = id;
                maxId = Math.Max(maxId, id);
            }

            var addedTokens = root.ContainsKey("added_tokens") ? JsonFields.Arr(root, "added_tokens", where) : new List<object>();
            foreach (var item in addedTokens)
            {
                var tok = (Dictionary<string, object>)item;
                string content = JsonFields.Str(tok, "content", where + " added_tokens");
                int id = JsonFields.Int(tok, "id", where + " added_tokens");
                added[content] = id;
                if (OptBool(tok, "special", false)) specialIds.Add(id);
                maxId = Math.Max(maxId, id);
            }
            addedByLength.AddRange(added.Keys);
            addedByLength.Sort((a, b) => b.Length.CompareTo(a.Length)); // longest match first

            idToToken = new string[maxId + 1];
            foreach (var pair in vocab) idToToken[pair.Value] = pair.Key;
            foreach (var pair in added) idToToken[pair.Value] = pair.Key;

            var merges = JsonFields.Arr(model, "merges", where + " model");
            for (int rank = 0; rank < merges.Count; rank++)
            {
                string left, right;
                var asList = merges[rank] as List<object>;
                if (asList != null && asList.Count == 2) { left = (string)asList[0]; right = (string)asList[1]; }
                else
                {
                    var text = merges[rank] as string;
                    int space = text == null ? -1 : text.IndexOf(' ', 1);
                    if (space < 0) throw new FormatException(where + ": merges[" + rank + "] must be \"a b\" or [\"a\", \"b\"]");
                    left = text.Substring(0, space); right = text.Substring(space + 1);
                }
                int l, r;
                if (!vocab.TryGetValue(left, out l) || !vocab.TryGetValue(right, out r) || !vocab.ContainsKey(left + right))
                    throw new FormatException(where + ": merges[" + rank + "] refers to tokens missing from the vocab");
                long key = PairKey(l, r);
                if (!mergeRanks.ContainsKey(key)) mergeRanks[key] = rank;
            }
        }

        /// <summary>Token ids of `text`; added/special tokens written literally in the text become their ids.</summary>
        public List<int> Encode(string text)
        {
            var ids = new List<int>();
            int start = 0;
            while (start < text.Length)
            {
                int matchAt, matchLen; string match;
                FindNextAdded(text, start, out matchAt, out matchLen, out match);
                int end = matchAt < 0 ? text.Length : matchAt;
                if (end > start) EncodeOrdinary(text.Substring(start, end - start), ids);
                if (matchAt < 0) break;
                ids.Add(added[match]);
                start = matchAt + matchLen;
            }
            return ids;
        }

        /// <summary>UTF-8 bytes of one token (special tokens give their content), for streaming decode.</summary>
        public byte[] TokenBytes(int id)
        {
            if (id < 0 || id >= idToToken.Length || idToToken[id] == null)
                throw new ArgumentOutOfRangeException("id", "token id " + id + " is not in the vocabulary");
            string token = idToToken[id];
            if (added.ContainsKey(token) && !vocab.ContainsKey(token)) return Encoding.UTF8.GetBytes(token);
            var bytes = new byte[token.Length];
            for (int i = 0; i < token.Length; i++)
            {
                byte b;
                if (!CharToByte.TryGetValue(token[i], out b)) return Encoding.UTF8.GetBytes(token);
                bytes[i] = b;
            }
            return bytes;
        }

        public bool IsSpecial(int id) { return specialIds.Contains(id); }

        public string Decode(IList<int> ids, bool skipSpecialTokens)
        {
            var bytes = new List<byte>();
            foreach (int id in ids)
            {
                if (skipSpecialTokens && specialIds.Contains(id)) continue;
                bytes.AddRange(TokenBytes(id));
            }
            return Encoding.UTF8.GetString(bytes.ToArray());
        }

        public int TokenToId(string token)
        {
            int id;
            if (added.TryGetValue(token, out id) || vocab.TryGetValue(token, out id)) return id;
            return -1;
        }

        private void FindNextAdded(string text, int from, out int at, out int length, out string match)
        {
            at = -1; length = 0; match = null;
            foreach (var content in addedByLength)
            {
                if (content.Length == 0) continue;
                int i = text.IndexOf(content, from, StringComparison.Ordinal);
                if (i >= 0 && (at < 0 || i < at)) { at = i; length = content.Length; match = content; }
            }
        }

        private void EncodeOrdinary(string segment, List<int> ids)
        {
            if (addPrefixSpace && segment.Length > 0 && !char.IsWhiteSpace(segment[0])) segment = " " + segment;
            if (!useRegex) { EncodeWord(segment, ids); return; }
            foreach (Match m in SplitPattern.Matches(segment)) EncodeWord(m.Value, ids);
        }

        private void EncodeWord(string word, List<int> ids)
        {
            int[] cached;
            if (cache.TryGetValue(word, out cached)) { ids.AddRange(cached); return; }
            var utf8 = Encoding.UTF8.GetBytes(word);
            var mapped = new StringBuilder(utf8.Length);
            foreach (var b in utf8) mapped.Append(ByteToChar[b]);
            string mappedWord = mapped.ToString();

            int direct;
            if (ignoreMerges && vocab.TryGetValue(mappedWord, out direct)) { Remember(word, new[] { direct }, ids); return; }

            var symbols = new List<int>(mappedWord.Length);
            foreach (char c in mappedWord)
            {
                int id;
                if (!vocab.TryGetValue(c.ToString(), out id))
                    throw new FormatException("tokenizer.json: byte symbol '" + c + "' is missing from the vocab (not a byte-level BPE vocabulary)");
                symbols.Add(id);
            }
            // Merge the lowest-ranked adjacent pair (leftmost on ties) until none is mergeable, like tokenizers' BPE.
            while (symbols.Count > 1)
            {
                int bestRank = int.MaxValue, bestAt = -1;
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    int rank;
                    if (mergeRanks.TryGetValue(PairKey(symbols[i], symbols[i + 1]), out rank) && rank < bestRank) { bestRank = rank; bestAt = i; }
                }
                if (bestAt < 0) break;
                symbols[bestAt] = vocab[idToToken[symbols[bestAt]] + idToToken[symbols[bestAt + 1]]];
                symbols.RemoveAt(bestAt + 1);
            }
            Remember(word, symbols.ToArray(), ids);
        }

        private void Remember(string word, int[] result, List<int> ids)
        {
            if (cache.Count < 65536) cache[word] = result;
            ids.AddRange(result);
        }

        private static long PairKey(int left, int right) { return ((long)left << 32) | (uint)right; }

        private static bool OptBool(Dictionary<string, object> o, string key, bool fallback)
        {
            object v;
            return o.TryGetValue(key, out v) && v is bool ? (bool)v : fallback;
        }

        private static Dictionary<string, object> FindByteLevel(Dictionary<string, object> pre)
        {
            if (pre == null) return null;
            string type = JsonFields.OptStr(pre, "type", "");
            if (type == "ByteLevel") return pre;
            if (type != "Sequence") return null;
            var list = JsonFields.Arr(pre, "pretokenizers", "tokenizer.json pre_tokenizer");
            if (list.Count != 1) return null;
            return FindByteLevel(list[0] as Dictionary<string, object>);
        }

        // GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards.
        private static char[] BuildByteToChar()
        {
            var map = new char[256];
            int n = 0;
            for (int b = 0; b < 256; b++)
            {
                bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                map[b] = printable ? (char)b : (char)(256 + n++);
            }
            return map;
        }

        private static Dictionary<char, byte> BuildCharToByte()
        {
            var map = new Dictionary<char, byte>(256);
            var forward = BuildByteToChar();
            for (int b = 0; b < 256; b++) map[forward[b]] = (byte)b;
            return map;
        }
    }

    /// <summary>Turns a stream of token bytes into text without ever splitting a UTF-8 character.</summary>
    public sealed class Utf8StreamDecoder
    {
        private readonly Decoder decoder = new UTF8Encoding(false, false).GetDecoder();

        public string Push(byte[] bytes)
        {
            var chars = new char[decoder.GetCharCount(bytes, 0, bytes.Length, false)];
            int n = decoder.GetChars(bytes, 0, bytes.Length, chars, 0, false);
            return new string(chars, 0, n);
        }

        public string Flush()
        {
            var chars = new char[8];
            int n = decoder.GetChars(new byte[0], 0, 0, chars, 0, true);
            return new string(chars, 0, n);
        }
    }
}
