using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace NpcRuntime.Unity.Json
{
    /// <summary>
    /// A small strict JSON reader (RFC 8259) for manifest.json, tokenizer.json and policy.json.
    /// Unity's JsonUtility cannot read dictionaries (tokenizer vocabularies), hence this.
    /// Values: Dictionary&lt;string, object&gt; (insertion order kept in Keys), List&lt;object&gt;, string,
    /// double, bool, null.
    /// </summary>
    public static class MiniJson
    {
        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            var parser = new Parser(text);
            parser.SkipWhitespace();
            object value = parser.ReadValue();
            parser.SkipWhitespace();
            if (!parser.AtEnd) throw parser.Error("trailing characters after the JSON value");
            return value;
        }

        public static Dictionary<string, object> ParseObject(string text, string what)
        {
            var obj = Parse(text) as Dictionary<string, object>;
            if (obj == null) throw new FormatException(what + ": expected a JSON object at the top level");
            return obj;
        }

        private sealed class Parser
        {
            private readonly string s;
            private int i;
            public Parser(string text) { s = text; }
            public bool AtEnd { get { return i >= s.Length; } }

            public FormatException Error(string message)
            {
                int line = 1, col = 1;
                for (int k = 0; k < i && k < s.Length; k++) { if (s[k] == '\n') { line++; col = 1; } else col++; }
                return new FormatException("JSON: " + message + " at line " + line + ", column " + col);
            }

            public void SkipWhitespace()
            {
                while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
            }

            public object ReadValue()
            {
                if (AtEnd) throw Error("unexpected end of input");
                char c = s[i];
                switch (c)
                {
                    case '{': return ReadObject();
                    case '[': return ReadArray();
                    case '"': return ReadString();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                        throw Error("unexpected character '" + c + "'");
                }
            }

            private void Expect(string word)
            {
                if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) throw Error("expected '" + word + "'");
                i += word.Length;
            }

            private Dictionary<string, object> ReadObject()
            {
                var result = new Dictionary<string, object>();
                i++; // {
                SkipWhitespace();
                if (i < s.Length && s[i] == '}') { i++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    if (AtEnd || s[i] != '"') throw Error("expected a string key");
                    string key = ReadString();
                    SkipWhitespace();
                    if (AtEnd || s[i] != ':') throw Error("expected ':'");
                    i++;
                    SkipWhitespace();
                    result[key] = ReadValue();
                    SkipWhitespace();
                    if (AtEnd) throw Error("unterminated object");
                    if (s[i] == ',') { i++; continue; }
                    if (s[i] == '}') { i++; return result; }
                    throw Error("expected ',' or '}'");
                }
            }

            private List<object> ReadArray()
            {
                var result = new List<object>();
                i++; // [
                SkipWhitespace();
                if (i < s.Length && s[i] == ']') { i++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    result.Add(ReadValue());
                    SkipWhitespace();
                    if (AtEnd) throw Error("unterminated array");
                    if (s[i] == ',') { i++; continue; }
                    if (s[i] == ']') { i++; return result; }
                    throw Error("expected ',' or ']'");
                }
            }

            private string ReadString()
            {
                var sb = new StringBuilder();
                i++; // opening quote
                while (true)
                {
                    if (AtEnd) throw Error("unterminated string");
                    char c = s[i++];
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    if (AtEnd) throw Error("unterminated escape");
                    char e = s[i++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (i + 4 > s.Length) throw Error("short \\u escape");
                            sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            i += 4;
                            break;
                        default: throw Error("invalid escape '\\" + e + "'");
                    }
                }
            }

            private double ReadNumber()
            {
                int start = i;
                if (s[i] == '-') i++;
                while (i < s.Length && "0123456789+-.eE".IndexOf(s[i]) >= 0) i++;
                double value;
                if (!double.TryParse(s.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out value))
                    throw Error("invalid number");
                return value;
            }
        }
    }

    /// <summary>Typed accessors that name the missing or mistyped field in their errors.</summary>
    public static class JsonFields
    {
        public static Dictionary<string, object> Obj(Dictionary<string, object> o, string key, string where)
        {
            var v = Get(o, key, where) as Dictionary<string, object>;
            if (v == null) throw new FormatException(where + ": field '" + key + "' must be an object");
            return v;
        }

        public static List<object> Arr(Dictionary<string, object> o, string key, string where)
        {
            var v = Get(o, key, where) as List<object>;
            if (v == null) throw new FormatException(where + ": field '" + key + "' must be an array");
            return v;
        }

        public static string Str(Dictionary<string, object> o, string key, string where)
        {
            var v = Get(o, key, where) as string;
            if (v == null) throw new FormatException(where + ": field '" + key + "' must be a string");
            return v;
        }

        public static int Int(Dictionary<string, object> o, string key, string where)
        {
            object v = Get(o, key, where);
            if (!(v is double) || Math.Floor((double)v) != (double)v) throw new FormatException(where + ": field '" + key + "' must be an integer");
            return (int)(double)v;
        }

        public static string OptStr(Dictionary<string, object> o, string key, string fallback)
        {
            object v;
            return o.TryGetValue(key, out v) && v is string ? (string)v : fallback;
        }

        public static Dictionary<string, object> OptObj(Dictionary<string, object> o, string key)
        {
            object v;
            return o.TryGetValue(key, out v) ? v as Dictionary<string, object> : null;
        }

        private static object Get(Dictionary<string, object> o, string key, string where)
        {
            object v;
            if (!o.TryGetValue(key, out v)) throw new FormatException(where + ": missing field '" + key + "'");
            return v;
        }
    }
}
