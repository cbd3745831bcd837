// Test shim of Google.Protobuf (the C# runtime that protoc 3.21 --csharp_out code targets).
// Declares only the members the generated code in unity_client/Runtime/Generated uses, with the
// real names and signatures of Google.Protobuf 3.21 (github.com/protocolbuffers/protobuf, csharp/src/Google.Protobuf).
// Unlike the real library this shim has no ref structs (Mono's mcs lacks them): ParseContext and
// WriteContext are plain structs over a reader/writer object, which the generated code cannot tell apart.
// The wire format is implemented for real (varint, fixed32/64, length-delimited, packed repeated, map
// entries), so the tests can check bytes against Python protobuf.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Google.Protobuf
{
    public static class ProtoPreconditions
    {
        public static T CheckNotNull<T>(T value, string name) where T : class
        {
            if (value == null) throw new ArgumentNullException(name);
            return value;
        }
    }

    public class InvalidProtocolBufferException : IOException
    {
        public InvalidProtocolBufferException(string message) : base(message) { }
    }

    public interface IDeepCloneable<T> { T Clone(); }

    public interface IMessage
    {
        void MergeFrom(CodedInputStream input);
        void WriteTo(CodedOutputStream output);
        int CalculateSize();
        Reflection.MessageDescriptor Descriptor { get; }
    }

    public interface IMessage<T> : IMessage, IEquatable<T>, IDeepCloneable<T> where T : IMessage<T>
    {
        void MergeFrom(T message);
    }

    public interface IBufferMessage : IMessage
    {
        void InternalMergeFrom(ref ParseContext ctx);
        void InternalWriteTo(ref WriteContext ctx);
    }

    public static class MessageExtensions
    {
        public static byte[] ToByteArray(this IMessage message)
        {
            var result = new byte[message.CalculateSize()];
            var output = new CodedOutputStream(result);
            message.WriteTo(output);
            output.CheckNoSpaceLeft();
            return result;
        }
    }

    public class MessageParser
    {
        internal readonly Func<IMessage> factory;
        internal MessageParser(Func<IMessage> factory) { this.factory = factory; }
    }

    public sealed class MessageParser<T> : MessageParser where T : IMessage<T>
    {
        private readonly Func<T> typedFactory;
        public MessageParser(Func<T> factory) : base(() => factory()) { typedFactory = factory; }
        public T ParseFrom(byte[] data)
        {
            T message = typedFactory();
            message.MergeFrom(new CodedInputStream(data));
            return message;
        }
        internal T CreateTemplate() { return typedFactory(); }
    }

    public static class WireFormat
    {
        public const int WireTypeVarint = 0, WireTypeFixed64 = 1, WireTypeLengthDelimited = 2, WireTypeFixed32 = 5;
        public static uint MakeTag(int fieldNumber, int wireType) { return (uint)(fieldNumber << 3) | (uint)wireType; }
        public static int GetTagWireType(uint tag) { return (int)(tag & 7); }
        public static int GetTagFieldNumber(uint tag) { return (int)(tag >> 3); }
    }

    // ---- writing ----------------------------------------------------------------------------------

    internal sealed class WireWriter
    {
        private readonly byte[] buffer;
        private int position;
        public WireWriter(byte[] buffer) { this.buffer = buffer; }
        public int SpaceLeft { get { return buffer.Length - position; } }
        public void WriteByte(byte b)
        {
            if (position >= buffer.Length) throw new InvalidOperationException("CodedOutputStream: out of space");
            buffer[position++] = b;
        }
        public void WriteBytes(byte[] bytes) { foreach (var b in bytes) WriteByte(b); }
        public void WriteVarint(ulong value)
        {
            while (value > 0x7F) { WriteByte((byte)((value & 0x7F) | 0x80)); value >>= 7; }
            WriteByte((byte)value);
        }
        public void WriteFixed32(uint value) { for (int i = 0; i < 4; i++) WriteByte((byte)(value >> (8 * i))); }
        public void WriteFixed64(ulong value) { for (int i = 0; i < 8; i++) WriteByte((byte)(value >> (8 * i))); }
    }

    /// <summary>Immutable bytes of a `bytes` field (Google.Protobuf.ByteString: the members the generated code
    /// and the client use).</summary>
    public sealed class ByteString : IEquatable<ByteString>
    {
        public static readonly ByteString Empty = new ByteString(new byte[0]);
        private readonly byte[] bytes;
        private ByteString(byte[] bytes) { this.bytes = bytes; }
        public static ByteString CopyFrom(params byte[] bytes) { return new ByteString((byte[])bytes.Clone()); }
        public static ByteString CopyFromUtf8(string text) { return new ByteString(Encoding.UTF8.GetBytes(text)); }
        internal static ByteString AttachBytes(byte[] bytes) { return new ByteString(bytes); }
        public int Length { get { return bytes.Length; } }
        public bool IsEmpty { get { return bytes.Length == 0; } }
        public byte this[int index] { get { return bytes[index]; } }
        public byte[] ToByteArray() { return (byte[])bytes.Clone(); }
        public string ToStringUtf8() { return Encoding.UTF8.GetString(bytes); }
        public string ToBase64() { return Convert.ToBase64String(bytes); }
        internal byte[] Raw { get { return bytes; } }
        public bool Equals(ByteString other)
        {
            if (ReferenceEquals(other, null) || other.bytes.Length != bytes.Length) return false;
            for (int i = 0; i < bytes.Length; i++) if (bytes[i] != other.bytes[i]) return false;
            return true;
        }
        public override bool Equals(object obj) { return Equals(obj as ByteString); }
        public override int GetHashCode() { int h = 23; foreach (var b in bytes) h = h * 31 + b; return h; }
        public static bool operator ==(ByteString a, ByteString b) { return ReferenceEquals(a, b) || (!ReferenceEquals(a, null) && a.Equals(b)); }
        public static bool operator !=(ByteString a, ByteString b) { return !(a == b); }
    }

    public sealed class CodedOutputStream
    {
        internal readonly WireWriter writer;
        public CodedOutputStream(byte[] flatArray) { writer = new WireWriter(flatArray); }
        internal CodedOutputStream(WireWriter writer) { this.writer = writer; }
        public int SpaceLeft { get { return writer.SpaceLeft; } }
        public void CheckNoSpaceLeft() { if (writer.SpaceLeft != 0) throw new InvalidOperationException("Did not write as much data as expected."); }
        public void Flush() { }

        private WriteContext Ctx { get { return new WriteContext(writer); } }
        public void WriteRawTag(byte b1) { writer.WriteByte(b1); }
        public void WriteRawTag(byte b1, byte b2) { writer.WriteByte(b1); writer.WriteByte(b2); }
        public void WriteTag(uint tag) { writer.WriteVarint(tag); }
        public void WriteString(string value) { Ctx.WriteString(value); }
        public void WriteBytes(ByteString value) { Ctx.WriteBytes(value); }
        public void WriteBool(bool value) { writer.WriteVarint(value ? 1UL : 0UL); }
        public void WriteEnum(int value) { writer.WriteVarint((ulong)(long)value); }
        public void WriteInt32(int value) { writer.WriteVarint((ulong)(long)value); }
        public void WriteUInt32(uint value) { writer.WriteVarint(value); }
        public void WriteUInt64(ulong value) { writer.WriteVarint(value); }
        public void WriteFloat(float value) { writer.WriteFixed32(BitConverter.ToUInt32(BitConverter.GetBytes(value), 0)); }
        public void WriteDouble(double value) { writer.WriteFixed64((ulong)BitConverter.DoubleToInt64Bits(value)); }
        public void WriteMessage(IMessage value) { var c = Ctx; c.WriteMessage(value); }
        public void WriteRawMessage(IMessage value) { var c = Ctx; ((IBufferMessage)value).InternalWriteTo(ref c); }

        public static int ComputeRawVarint64Size(ulong value) { int n = 1; while (value > 0x7F) { value >>= 7; n++; } return n; }
        public static int ComputeRawVarint32Size(uint value) { return ComputeRawVarint64Size(value); }
        public static int ComputeLengthSize(int length) { return ComputeRawVarint32Size((uint)length); }
        public static int ComputeStringSize(string value) { int n = Encoding.UTF8.GetByteCount(value); return ComputeLengthSize(n) + n; }
        public static int ComputeBytesSize(ByteString value) { return ComputeLengthSize(value.Length) + value.Length; }
        public static int ComputeMessageSize(IMessage value) { int n = value.CalculateSize(); return ComputeLengthSize(n) + n; }
        public static int ComputeEnumSize(int value) { return ComputeInt32Size(value); }
        public static int ComputeInt32Size(int value) { return value >= 0 ? ComputeRawVarint32Size((uint)value) : 10; }
        public static int ComputeUInt32Size(uint value) { return ComputeRawVarint32Size(value); }
        public static int ComputeUInt64Size(ulong value) { return ComputeRawVarint64Size(value); }
        public static int ComputeTagSize(int fieldNumber) { return ComputeRawVarint32Size(WireFormat.MakeTag(fieldNumber, 0)); }
    }

    /// <summary>Real Google.Protobuf: a ref struct over a span; here a struct over the shared writer.</summary>
    public struct WriteContext
    {
        internal readonly WireWriter writer;
        internal WriteContext(WireWriter writer) { this.writer = writer; }
        public void WriteRawTag(byte b1) { writer.WriteByte(b1); }
        public void WriteRawTag(byte b1, byte b2) { writer.WriteByte(b1); writer.WriteByte(b2); }
        public void WriteTag(uint tag) { writer.WriteVarint(tag); }
        public void WriteLength(int length) { writer.WriteVarint((uint)length); }
        public void WriteString(string value)
        {
            var bytes = Encoding.UTF8.GetBytes(value);
            writer.WriteVarint((ulong)bytes.Length);
            writer.WriteBytes(bytes);
        }
        public void WriteBytes(ByteString value)
        {
            writer.WriteVarint((ulong)value.Length);
            writer.WriteBytes(value.Raw);
        }
        public void WriteBool(bool value) { writer.WriteVarint(value ? 1UL : 0UL); }
        public void WriteEnum(int value) { writer.WriteVarint((ulong)(long)value); }
        public void WriteInt32(int value) { writer.WriteVarint((ulong)(long)value); }
        public void WriteUInt32(uint value) { writer.WriteVarint(value); }
        public void WriteUInt64(ulong value) { writer.WriteVarint(value); }
        public void WriteFloat(float value) { writer.WriteFixed32(BitConverter.ToUInt32(BitConverter.GetBytes(value), 0)); }
        public void WriteDouble(double value) { writer.WriteFixed64((ulong)BitConverter.DoubleToInt64Bits(value)); }
        public void WriteMessage(IMessage value)
        {
            writer.WriteVarint((ulong)value.CalculateSize());
            var self = this;
            ((IBufferMessage)value).InternalWriteTo(ref self);
        }
    }

    // ---- reading ----------------------------------------------------------------------------------

    internal sealed class WireReader
    {
        private readonly byte[] buffer;
        public int Position;
        public int Limit;
        public uint LastTag;
        public WireReader(byte[] buffer) { this.buffer = buffer; Limit = buffer.Length; }
        public bool AtLimit { get { return Position >= Limit; } }
        public byte ReadByte()
        {
            if (Position >= Limit) throw new InvalidProtocolBufferException("truncated message");
            return buffer[Position++];
        }
        public ulong ReadVarint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                byte b = ReadByte();
                result |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return result;
            }
            throw new InvalidProtocolBufferException("malformed varint");
        }
        public uint ReadFixed32() { uint v = 0; for (int i = 0; i < 4; i++) v |= (uint)ReadByte() << (8 * i); return v; }
        public ulong ReadFixed64() { ulong v = 0; for (int i = 0; i < 8; i++) v |= (ulong)ReadByte() << (8 * i); return v; }
        public byte[] ReadBytes(int count)
        {
            if (count < 0 || Position + count > Limit) throw new InvalidProtocolBufferException("truncated message");
            var bytes = new byte[count];
            Array.Copy(buffer, Position, bytes, 0, count);
            Position += count;
            return bytes;
        }
        public uint ReadTag()
        {
            if (AtLimit) { LastTag = 0; return 0; }
            LastTag = (uint)ReadVarint();
            if (WireFormat.GetTagFieldNumber(LastTag) == 0) throw new InvalidProtocolBufferException("invalid tag 0");
            return LastTag;
        }
        public int PushLimit(int length)
        {
            int old = Limit;
            int newLimit = Position + length;
            if (length < 0 || newLimit > old) throw new InvalidProtocolBufferException("truncated message");
            Limit = newLimit;
            return old;
        }
        public void PopLimit(int old) { Limit = old; }
        /// <summary>Skips the field of LastTag and returns its raw bytes (tag included) for UnknownFieldSet.</summary>
        public byte[] SkipLastField()
        {
            int start = Position;
            switch (WireFormat.GetTagWireType(LastTag))
            {
                case WireFormat.WireTypeVarint: ReadVarint(); break;
                case WireFormat.WireTypeFixed64: ReadFixed64(); break;
                case WireFormat.WireTypeFixed32: ReadFixed32(); break;
                case WireFormat.WireTypeLengthDelimited: ReadBytes((int)ReadVarint()); break;
                default: throw new InvalidProtocolBufferException("unsupported wire type " + WireFormat.GetTagWireType(LastTag));
            }
            var tagBytes = new List<byte>();
            ulong t = LastTag;
            while (t > 0x7F) { tagBytes.Add((byte)((t & 0x7F) | 0x80)); t >>= 7; }
            tagBytes.Add((byte)t);
            var body = new byte[Position - start];
            Array.Copy(buffer, start, body, 0, body.Length);
            tagBytes.AddRange(body);
            return tagBytes.ToArray();
        }
    }

    public sealed class CodedInputStream
    {
        internal readonly WireReader reader;
        public CodedInputStream(byte[] buffer) { reader = new WireReader(buffer); }
        private ParseContext Ctx { get { return new ParseContext(reader); } }
        public uint ReadTag() { return reader.ReadTag(); }
        public string ReadString() { return Ctx.ReadString(); }
        public ByteString ReadBytes() { return Ctx.ReadBytes(); }
        public bool ReadBool() { return reader.ReadVarint() != 0; }
        public int ReadEnum() { return (int)reader.ReadVarint(); }
        public int ReadInt32() { return (int)reader.ReadVarint(); }
        public uint ReadUInt32() { return (uint)reader.ReadVarint(); }
        public ulong ReadUInt64() { return reader.ReadVarint(); }
        public float ReadFloat() { return Ctx.ReadFloat(); }
        public double ReadDouble() { return Ctx.ReadDouble(); }
        public void ReadMessage(IMessage builder) { var c = Ctx; c.ReadMessage(builder); }
        public void ReadRawMessage(IMessage message) { var c = Ctx; ((IBufferMessage)message).InternalMergeFrom(ref c); }
    }

    /// <summary>Real Google.Protobuf: a ref struct over a span; here a struct over the shared reader.</summary>
    public struct ParseContext
    {
        internal readonly WireReader reader;
        internal ParseContext(WireReader reader) { this.reader = reader; }
        public uint ReadTag() { return reader.ReadTag(); }
        public uint LastTag { get { return reader.LastTag; } }
        public int ReadLength() { return (int)reader.ReadVarint(); }
        public string ReadString() { int n = (int)reader.ReadVarint(); return Encoding.UTF8.GetString(reader.ReadBytes(n)); }
        public ByteString ReadBytes() { int n = (int)reader.ReadVarint(); return ByteString.AttachBytes(reader.ReadBytes(n)); }
        public bool ReadBool() { return reader.ReadVarint() != 0; }
        public int ReadEnum() { return (int)reader.ReadVarint(); }
        public int ReadInt32() { return (int)reader.ReadVarint(); }
        public uint ReadUInt32() { return (uint)reader.ReadVarint(); }
        public ulong ReadUInt64() { return reader.ReadVarint(); }
        public float ReadFloat() { return BitConverter.ToSingle(BitConverter.GetBytes(reader.ReadFixed32()), 0); }
        public double ReadDouble() { return BitConverter.Int64BitsToDouble((long)reader.ReadFixed64()); }
        public void ReadMessage(IMessage builder)
        {
            int length = (int)reader.ReadVarint();
            int old = reader.PushLimit(length);
            var self = this;
            ((IBufferMessage)builder).InternalMergeFrom(ref self);
            if (!reader.AtLimit) throw new InvalidProtocolBufferException("message did not end at its length");
            reader.PopLimit(old);
        }
    }

    // ---- unknown fields ---------------------------------------------------------------------------

    public sealed class UnknownFieldSet
    {
        private readonly List<byte[]> fields = new List<byte[]>();

        public static UnknownFieldSet MergeFieldFrom(UnknownFieldSet unknownFields, CodedInputStream input)
        {
            var set = unknownFields ?? new UnknownFieldSet();
            set.fields.Add(input.reader.SkipLastField());
            return set;
        }
        public static UnknownFieldSet MergeFieldFrom(UnknownFieldSet unknownFields, ref ParseContext ctx)
        {
            var set = unknownFields ?? new UnknownFieldSet();
            set.fields.Add(ctx.reader.SkipLastField());
            return set;
        }
        public static UnknownFieldSet MergeFrom(UnknownFieldSet unknownFields, UnknownFieldSet other)
        {
            if (other == null) return unknownFields;
            var set = unknownFields ?? new UnknownFieldSet();
            set.fields.AddRange(other.fields);
            return set;
        }
        public static UnknownFieldSet Clone(UnknownFieldSet other)
        {
            if (other == null) return null;
            var set = new UnknownFieldSet();
            set.fields.AddRange(other.fields);
            return set;
        }
        public int CalculateSize() { int n = 0; foreach (var f in fields) n += f.Length; return n; }
        public void WriteTo(CodedOutputStream output) { foreach (var f in fields) output.writer.WriteBytes(f); }
        public void WriteTo(ref WriteContext ctx) { foreach (var f in fields) ctx.writer.WriteBytes(f); }
        public override bool Equals(object other)
        {
            var o = other as UnknownFieldSet;
            if (o == null || o.fields.Count != fields.Count) return false;
            for (int i = 0; i < fields.Count; i++)
                if (Convert.ToBase64String(fields[i]) != Convert.ToBase64String(o.fields[i])) return false;
            return true;
        }
        public override int GetHashCode() { return fields.Count; }
    }

    // ---- field codecs -----------------------------------------------------------------------------

    public sealed class FieldCodec<T>
    {
        internal delegate T Reader(ref ParseContext ctx);
        internal delegate void Writer(ref WriteContext ctx, T value);

        internal readonly Reader ValueReader;
        internal readonly Writer ValueWriter;
        internal readonly Func<T, int> ValueSizeCalculator;
        internal readonly int FixedSize; // > 0 for fixed-width scalars
        public uint Tag { get; private set; }
        public T DefaultValue { get; private set; }
        internal readonly bool PackedRepeatedField;

        internal FieldCodec(uint tag, T defaultValue, Reader reader, Writer writer, Func<T, int> sizer, int fixedSize, bool packable)
        {
            Tag = tag; DefaultValue = defaultValue; ValueReader = reader; ValueWriter = writer;
            ValueSizeCalculator = sizer; FixedSize = fixedSize;
            PackedRepeatedField = packable && WireFormat.GetTagWireType(tag) == WireFormat.WireTypeLengthDelimited;
        }

        internal bool IsDefault(T value) { return EqualityComparer<T>.Default.Equals(value, DefaultValue); }
        internal int CalculateSizeWithTag(T value) { return CodedOutputStream.ComputeRawVarint32Size(Tag) + ValueSizeCalculator(value); }
        internal void WriteTagAndValue(ref WriteContext ctx, T value)
        {
            if (IsDefault(value)) return;
            ctx.WriteTag(Tag);
            ValueWriter(ref ctx, value);
        }
        internal int CalculateSizeIfNotDefault(T value) { return IsDefault(value) ? 0 : CalculateSizeWithTag(value); }
    }

    public static class FieldCodec
    {
        public static FieldCodec<string> ForString(uint tag) { return ForString(tag, ""); }
        public static FieldCodec<string> ForString(uint tag, string defaultValue)
        {
            return new FieldCodec<string>(tag, defaultValue, (ref ParseContext c) => c.ReadString(),
                (ref WriteContext c, string v) => c.WriteString(v), CodedOutputStream.ComputeStringSize, 0, false);
        }
        public static FieldCodec<double> ForDouble(uint tag) { return ForDouble(tag, 0D); }
        public static FieldCodec<double> ForDouble(uint tag, double defaultValue)
        {
            return new FieldCodec<double>(tag, defaultValue, (ref ParseContext c) => c.ReadDouble(),
                (ref WriteContext c, double v) => c.WriteDouble(v), v => 8, 8, true);
        }
        public static FieldCodec<uint> ForUInt32(uint tag) { return ForUInt32(tag, 0); }
        public static FieldCodec<uint> ForUInt32(uint tag, uint defaultValue)
        {
            return new FieldCodec<uint>(tag, defaultValue, (ref ParseContext c) => c.ReadUInt32(),
                (ref WriteContext c, uint v) => c.WriteUInt32(v), CodedOutputStream.ComputeUInt32Size, 0, true);
        }
        public static FieldCodec<T> ForMessage<T>(uint tag, MessageParser<T> parser) where T : class, IMessage<T>
        {
            return new FieldCodec<T>(tag, null,
                (ref ParseContext c) => { T m = parser.CreateTemplate(); c.ReadMessage(m); return m; },
                (ref WriteContext c, T v) => c.WriteMessage(v), CodedOutputStream.ComputeMessageSize, 0, false);
        }
    }

    /// <summary>Used by the generated ToString(); the shim prints a compact field-less form.</summary>
    public sealed class JsonFormatter
    {
        public static string ToDiagnosticString(IMessage message)
        {
            return "{ \"@type\": \"" + message.GetType().Name + "\", \"@size\": " + message.CalculateSize() + " }";
        }
    }
}

namespace Google.Protobuf.Collections
{
    using Google.Protobuf;

    public static class ProtobufEqualityComparers
    {
        private sealed class BitwiseSingle : EqualityComparer<float>
        {
            public override bool Equals(float x, float y) { return BitConverter.ToInt32(BitConverter.GetBytes(x), 0) == BitConverter.ToInt32(BitConverter.GetBytes(y), 0); }
            public override int GetHashCode(float obj) { return BitConverter.ToInt32(BitConverter.GetBytes(obj), 0); }
        }
        private sealed class BitwiseDouble : EqualityComparer<double>
        {
            public override bool Equals(double x, double y) { return BitConverter.DoubleToInt64Bits(x) == BitConverter.DoubleToInt64Bits(y); }
            public override int GetHashCode(double obj) { return BitConverter.DoubleToInt64Bits(obj).GetHashCode(); }
        }
        public static EqualityComparer<float> BitwiseSingleEqualityComparer { get; } = new BitwiseSingle();
        public static EqualityComparer<double> BitwiseDoubleEqualityComparer { get; } = new BitwiseDouble();
    }

    public sealed class RepeatedField<T> : IList<T>, IEquatable<RepeatedField<T>>, IDeepCloneable<RepeatedField<T>>
    {
        private readonly List<T> items = new List<T>();

        public RepeatedField<T> Clone()
        {
            var clone = new RepeatedField<T>();
            foreach (var item in items)
            {
                var cloneable = item as IDeepCloneable<T>;
                clone.items.Add(cloneable != null ? cloneable.Clone() : item);
            }
            return clone;
        }

        public void AddEntriesFrom(CodedInputStream input, FieldCodec<T> codec)
        {
            var ctx = new ParseContext(input.reader);
            AddEntriesFrom(ref ctx, codec);
        }

        public void AddEntriesFrom(ref ParseContext ctx, FieldCodec<T> codec)
        {
            uint tag = ctx.LastTag;
            bool packedOnWire = WireFormat.GetTagWireType(tag) == WireFormat.WireTypeLengthDelimited;
            if (packedOnWire && codec.PackedRepeatedField || packedOnWire && codec.FixedSize == 0 && typeof(T) == typeof(uint))
            {
                int length = ctx.ReadLength();
                int old = ctx.reader.PushLimit(length);
                while (!ctx.reader.AtLimit) items.Add(codec.ValueReader(ref ctx));
                ctx.reader.PopLimit(old);
            }
            else
            {
                items.Add(codec.ValueReader(ref ctx));
            }
        }

        private int DataSize(FieldCodec<T> codec)
        {
            int n = 0;
            foreach (var item in items) n += codec.ValueSizeCalculator(item);
            return n;
        }

        public int CalculateSize(FieldCodec<T> codec)
        {
            if (items.Count == 0) return 0;
            if (codec.PackedRepeatedField)
            {
                int data = DataSize(codec);
                return CodedOutputStream.ComputeRawVarint32Size(codec.Tag) + CodedOutputStream.ComputeLengthSize(data) + data;
            }
            int size = 0;
            foreach (var item in items) size += codec.CalculateSizeWithTag(item);
            return size;
        }

        public void WriteTo(CodedOutputStream output, FieldCodec<T> codec)
        {
            var ctx = new WriteContext(output.writer);
            WriteTo(ref ctx, codec);
        }

        public void WriteTo(ref WriteContext ctx, FieldCodec<T> codec)
        {
            if (items.Count == 0) return;
            if (codec.PackedRepeatedField)
            {
                ctx.WriteTag(codec.Tag);
                ctx.WriteLength(DataSize(codec));
                foreach (var item in items) codec.ValueWriter(ref ctx, item);
                return;
            }
            foreach (var item in items) { ctx.WriteTag(codec.Tag); codec.ValueWriter(ref ctx, item); }
        }

        public void Add(T item) { if (item == null) throw new ArgumentNullException("item"); items.Add(item); }
        public void Add(IEnumerable<T> values) { foreach (var v in values) Add(v); }
        public void AddRange(IEnumerable<T> values) { Add(values); }
        public void Clear() { items.Clear(); }
        public bool Contains(T item) { return items.Contains(item); }
        public void CopyTo(T[] array, int arrayIndex) { items.CopyTo(array, arrayIndex); }
        public bool Remove(T item) { return items.Remove(item); }
        public int Count { get { return items.Count; } }
        public bool IsReadOnly { get { return false; } }
        public int IndexOf(T item) { return items.IndexOf(item); }
        public void Insert(int index, T item) { items.Insert(index, item); }
        public void RemoveAt(int index) { items.RemoveAt(index); }
        public T this[int index] { get { return items[index]; } set { items[index] = value; } }
        public IEnumerator<T> GetEnumerator() { return items.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return items.GetEnumerator(); }

        public override bool Equals(object obj) { return Equals(obj as RepeatedField<T>); }
        public bool Equals(RepeatedField<T> other)
        {
            if (ReferenceEquals(other, null) || other.items.Count != items.Count) return false;
            var cmp = EqualityComparer<T>.Default;
            for (int i = 0; i < items.Count; i++) if (!cmp.Equals(items[i], other.items[i])) return false;
            return true;
        }
        public override int GetHashCode()
        {
            int hash = 0;
            foreach (var item in items) hash = hash * 31 + (item == null ? 0 : item.GetHashCode());
            return hash;
        }
    }

    /// <summary>Insertion-ordered map, like the real MapField (which keeps a linked list of entries).</summary>
    public sealed class MapField<TKey, TValue> : IDictionary<TKey, TValue>, IEquatable<MapField<TKey, TValue>>, IDeepCloneable<MapField<TKey, TValue>>
    {
        private readonly List<KeyValuePair<TKey, TValue>> entries = new List<KeyValuePair<TKey, TValue>>();

        public sealed class Codec
        {
            internal readonly FieldCodec<TKey> keyCodec;
            internal readonly FieldCodec<TValue> valueCodec;
            internal readonly uint mapTag;
            public Codec(FieldCodec<TKey> keyCodec, FieldCodec<TValue> valueCodec, uint mapTag)
            {
                this.keyCodec = keyCodec; this.valueCodec = valueCodec; this.mapTag = mapTag;
            }
        }

        private int IndexOfKey(TKey key)
        {
            var cmp = EqualityComparer<TKey>.Default;
            for (int i = 0; i < entries.Count; i++) if (cmp.Equals(entries[i].Key, key)) return i;
            return -1;
        }

        public MapField<TKey, TValue> Clone()
        {
            var clone = new MapField<TKey, TValue>();
            clone.entries.AddRange(entries);
            return clone;
        }

        public void Add(IDictionary<TKey, TValue> entries) { foreach (var pair in entries) this[pair.Key] = pair.Value; }

        public void AddEntriesFrom(CodedInputStream input, Codec codec)
        {
            var ctx = new ParseContext(input.reader);
            AddEntriesFrom(ref ctx, codec);
        }

        public void AddEntriesFrom(ref ParseContext ctx, Codec codec)
        {
            int length = ctx.ReadLength();
            int old = ctx.reader.PushLimit(length);
            TKey key = codec.keyCodec.DefaultValue;
            TValue value = codec.valueCodec.DefaultValue;
            uint tag;
            while ((tag = ctx.ReadTag()) != 0)
            {
                if (tag == codec.keyCodec.Tag) key = codec.keyCodec.ValueReader(ref ctx);
                else if (tag == codec.valueCodec.Tag) value = codec.valueCodec.ValueReader(ref ctx);
                else ctx.reader.SkipLastField();
            }
            ctx.reader.PopLimit(old);
            this[key] = value;
        }

        private int EntrySize(Codec codec, KeyValuePair<TKey, TValue> entry)
        {
            return codec.keyCodec.CalculateSizeIfNotDefault(entry.Key) + codec.valueCodec.CalculateSizeIfNotDefault(entry.Value);
        }

        public void WriteTo(CodedOutputStream output, Codec codec)
        {
            var ctx = new WriteContext(output.writer);
            WriteTo(ref ctx, codec);
        }

        public void WriteTo(ref WriteContext ctx, Codec codec)
        {
            foreach (var entry in entries)
            {
                ctx.WriteTag(codec.mapTag);
                ctx.WriteLength(EntrySize(codec, entry));
                codec.keyCodec.WriteTagAndValue(ref ctx, entry.Key);
                codec.valueCodec.WriteTagAndValue(ref ctx, entry.Value);
            }
        }

        public int CalculateSize(Codec codec)
        {
            int size = 0;
            foreach (var entry in entries)
            {
                int entrySize = EntrySize(codec, entry);
                size += CodedOutputStream.ComputeRawVarint32Size(codec.mapTag) + CodedOutputStream.ComputeLengthSize(entrySize) + entrySize;
            }
            return size;
        }

        public TValue this[TKey key]
        {
            get
            {
                int i = IndexOfKey(key);
                if (i < 0) throw new KeyNotFoundException(key.ToString());
                return entries[i].Value;
            }
            set
            {
                if (key == null) throw new ArgumentNullException("key");
                int i = IndexOfKey(key);
                var pair = new KeyValuePair<TKey, TValue>(key, value);
                if (i < 0) entries.Add(pair); else entries[i] = pair;
            }
        }
        public ICollection<TKey> Keys { get { var l = new List<TKey>(); foreach (var e in entries) l.Add(e.Key); return l; } }
        public ICollection<TValue> Values { get { var l = new List<TValue>(); foreach (var e in entries) l.Add(e.Value); return l; } }
        public int Count { get { return entries.Count; } }
        public bool IsReadOnly { get { return false; } }
        public void Add(TKey key, TValue value)
        {
            if (IndexOfKey(key) >= 0) throw new ArgumentException("Key already exists in map", "key");
            this[key] = value;
        }
        public void Add(KeyValuePair<TKey, TValue> item) { Add(item.Key, item.Value); }
        public void Clear() { entries.Clear(); }
        public bool Contains(KeyValuePair<TKey, TValue> item) { return entries.Contains(item); }
        public bool ContainsKey(TKey key) { return IndexOfKey(key) >= 0; }
        public void CopyTo(KeyValuePair<TKey, TValue>[] array, int arrayIndex) { entries.CopyTo(array, arrayIndex); }
        public bool Remove(TKey key) { int i = IndexOfKey(key); if (i < 0) return false; entries.RemoveAt(i); return true; }
        public bool Remove(KeyValuePair<TKey, TValue> item) { return entries.Remove(item); }
        public bool TryGetValue(TKey key, out TValue value)
        {
            int i = IndexOfKey(key);
            value = i < 0 ? default(TValue) : entries[i].Value;
            return i >= 0;
        }
        public IEnumerator<KeyValuePair<TKey, TValue>> GetEnumerator() { return entries.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return entries.GetEnumerator(); }

        public override bool Equals(object obj) { return Equals(obj as MapField<TKey, TValue>); }
        public bool Equals(MapField<TKey, TValue> other)
        {
            if (ReferenceEquals(other, null) || other.Count != Count) return false;
            var cmp = EqualityComparer<TValue>.Default;
            foreach (var e in entries)
            {
                TValue v;
                if (!other.TryGetValue(e.Key, out v) || !cmp.Equals(v, e.Value)) return false;
            }
            return true;
        }
        public override int GetHashCode()
        {
            int hash = 0;
            foreach (var e in entries) hash ^= e.Key.GetHashCode() * 31 + (e.Value == null ? 0 : e.Value.GetHashCode());
            return hash;
        }
    }
}

namespace Google.Protobuf.Reflection
{
    using Google.Protobuf;

    [AttributeUsage(AttributeTargets.Field)]
    public class OriginalNameAttribute : Attribute
    {
        public string Name { get; set; }
        public bool PreferredAlias { get; set; }
        public OriginalNameAttribute(string name) { Name = name; PreferredAlias = true; }
    }

    public sealed class Extension { }

    public sealed class GeneratedClrTypeInfo
    {
        public Type ClrType { get; private set; }
        public MessageParser Parser { get; private set; }
        public string[] PropertyNames { get; private set; }
        public GeneratedClrTypeInfo[] NestedTypes { get; private set; }

        public GeneratedClrTypeInfo(Type clrType, MessageParser parser, string[] propertyNames, string[] oneofNames,
            Type[] nestedEnums, Extension[] extensions, GeneratedClrTypeInfo[] nestedTypes)
        {
            ClrType = clrType; Parser = parser; PropertyNames = propertyNames; NestedTypes = nestedTypes;
        }

        public GeneratedClrTypeInfo(Type[] generatedEnums, Extension[] extensions, GeneratedClrTypeInfo[] generatedCodeInfos)
        {
            NestedTypes = generatedCodeInfos;
        }
    }

    public sealed class MessageDescriptor
    {
        public string Name { get; private set; }
        public Type ClrType { get; private set; }
        internal MessageDescriptor(Type clrType) { ClrType = clrType; Name = clrType.Name; }
    }

    public sealed class FileDescriptor
    {
        public IList<MessageDescriptor> MessageTypes { get; private set; }
        public byte[] SerializedData { get; private set; }

        public static FileDescriptor FromGeneratedCode(byte[] descriptorData, FileDescriptor[] dependencies, GeneratedClrTypeInfo generatedCodeInfo)
        {
            var file = new FileDescriptor { SerializedData = descriptorData };
            var types = new List<MessageDescriptor>();
            if (generatedCodeInfo.NestedTypes != null)
                foreach (var info in generatedCodeInfo.NestedTypes) types.Add(new MessageDescriptor(info.ClrType));
            file.MessageTypes = types.AsReadOnly();
            return file;
        }
    }
}
