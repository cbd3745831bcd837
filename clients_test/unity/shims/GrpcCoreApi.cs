// Test shim of Grpc.Core.Api (the transport-independent gRPC C# API shared by Grpc.Net.Client and the
// legacy Grpc.Core). Only the members the Unity client uses, with the signatures of Grpc.Core.Api 2.x
// (grpc/grpc-dotnet src/Grpc.Core.Api: CallInvoker.cs, Method.cs, Marshallers.cs, CallOptions.cs,
// Metadata.cs, AsyncUnaryCall.cs, AsyncServerStreamingCall.cs, AsyncDuplexStreamingCall.cs, RpcException.cs).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Grpc.Core
{
    public enum StatusCode
    {
        OK = 0, Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5,
        AlreadyExists = 6, PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9, Aborted = 10,
        OutOfRange = 11, Unimplemented = 12, Internal = 13, Unavailable = 14, DataLoss = 15, Unauthenticated = 16,
    }

    public struct Status
    {
        public static readonly Status DefaultSuccess = new Status(StatusCode.OK, "");
        public Status(StatusCode statusCode, string detail) { StatusCode = statusCode; Detail = detail; }
        public StatusCode StatusCode { get; private set; }
        public string Detail { get; private set; }
    }

    public class RpcException : Exception
    {
        public RpcException(Status status) : base(status.Detail) { Status = status; }
        public RpcException(Status status, string message) : base(message) { Status = status; }
        public Status Status { get; private set; }
        public StatusCode StatusCode { get { return Status.StatusCode; } }
    }

    public enum MethodType { Unary, ClientStreaming, ServerStreaming, DuplexStreaming }

    public class Marshaller<T>
    {
        public Marshaller(Func<T, byte[]> serializer, Func<byte[], T> deserializer)
        {
            Serializer = serializer; Deserializer = deserializer;
        }
        public Func<T, byte[]> Serializer { get; private set; }
        public Func<byte[], T> Deserializer { get; private set; }
    }

    public static class Marshallers
    {
        public static Marshaller<T> Create<T>(Func<T, byte[]> serializer, Func<byte[], T> deserializer)
        {
            return new Marshaller<T>(serializer, deserializer);
        }
    }

    public interface IMethod
    {
        MethodType Type { get; }
        string ServiceName { get; }
        string Name { get; }
        string FullName { get; }
    }

    public class Method<TRequest, TResponse> : IMethod
    {
        public Method(MethodType type, string serviceName, string name, Marshaller<TRequest> requestMarshaller, Marshaller<TResponse> responseMarshaller)
        {
            Type = type; ServiceName = serviceName; Name = name;
            RequestMarshaller = requestMarshaller; ResponseMarshaller = responseMarshaller;
        }
        public MethodType Type { get; private set; }
        public string ServiceName { get; private set; }
        public string Name { get; private set; }
        public Marshaller<TRequest> RequestMarshaller { get; private set; }
        public Marshaller<TResponse> ResponseMarshaller { get; private set; }
        public string FullName { get { return "/" + ServiceName + "/" + Name; } }
    }

    public sealed class Metadata : IList<Metadata.Entry>
    {
        public static readonly Metadata Empty = new Metadata();
        private readonly List<Entry> entries = new List<Entry>();

        public sealed class Entry
        {
            public Entry(string key, string value) { Key = key.ToLowerInvariant(); Value = value; }
            public string Key { get; private set; }
            public string Value { get; private set; }
        }

        public void Add(string key, string value) { entries.Add(new Entry(key, value)); }
        public Entry Get(string key)
        {
            for (int i = entries.Count - 1; i >= 0; i--) if (entries[i].Key == key.ToLowerInvariant()) return entries[i];
            return null;
        }
        public string GetValue(string key) { var e = Get(key); return e == null ? null : e.Value; }
        public void Add(Entry item) { entries.Add(item); }
        public void Clear() { entries.Clear(); }
        public bool Contains(Entry item) { return entries.Contains(item); }
        public void CopyTo(Entry[] array, int arrayIndex) { entries.CopyTo(array, arrayIndex); }
        public bool Remove(Entry item) { return entries.Remove(item); }
        public int Count { get { return entries.Count; } }
        public bool IsReadOnly { get { return false; } }
        public int IndexOf(Entry item) { return entries.IndexOf(item); }
        public void Insert(int index, Entry item) { entries.Insert(index, item); }
        public void RemoveAt(int index) { entries.RemoveAt(index); }
        public Entry this[int index] { get { return entries[index]; } set { entries[index] = value; } }
        public IEnumerator<Entry> GetEnumerator() { return entries.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return entries.GetEnumerator(); }
    }

    public struct CallOptions
    {
        public CallOptions(Metadata headers = null, DateTime? deadline = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            Headers = headers; Deadline = deadline; CancellationToken = cancellationToken;
        }
        public Metadata Headers { get; private set; }
        public DateTime? Deadline { get; private set; }
        public CancellationToken CancellationToken { get; private set; }
        public CallOptions WithHeaders(Metadata headers) { var o = this; o.Headers = headers; return o; }
        public CallOptions WithDeadline(DateTime deadline) { var o = this; o.Deadline = deadline; return o; }
        public CallOptions WithCancellationToken(CancellationToken cancellationToken) { var o = this; o.CancellationToken = cancellationToken; return o; }
    }

    public interface IAsyncStreamReader<out T>
    {
        T Current { get; }
        Task<bool> MoveNext(CancellationToken cancellationToken);
    }

    [Flags]
    public enum WriteFlags { BufferHint = 0x1, NoCompress = 0x2 }

    public class WriteOptions
    {
        public static readonly WriteOptions Default = new WriteOptions();
        public WriteOptions(WriteFlags flags = default(WriteFlags)) { Flags = flags; }
        public WriteFlags Flags { get; private set; }
    }

    public interface IAsyncStreamWriter<in T>
    {
        Task WriteAsync(T message);
        WriteOptions WriteOptions { get; set; }
    }

    public interface IClientStreamWriter<in T> : IAsyncStreamWriter<T>
    {
        Task CompleteAsync();
    }

    public sealed class AsyncUnaryCall<TResponse> : IDisposable
    {
        private readonly Action disposeAction;
        private readonly Func<Status> getStatusFunc;
        private readonly Func<Metadata> getTrailersFunc;
        public AsyncUnaryCall(Task<TResponse> responseAsync, Task<Metadata> responseHeadersAsync, Func<Status> getStatusFunc, Func<Metadata> getTrailersFunc, Action disposeAction)
        {
            ResponseAsync = responseAsync; ResponseHeadersAsync = responseHeadersAsync;
            this.getStatusFunc = getStatusFunc; this.getTrailersFunc = getTrailersFunc; this.disposeAction = disposeAction;
        }
        public Task<TResponse> ResponseAsync { get; private set; }
        public Task<Metadata> ResponseHeadersAsync { get; private set; }
        public System.Runtime.CompilerServices.TaskAwaiter<TResponse> GetAwaiter() { return ResponseAsync.GetAwaiter(); }
        public Status GetStatus() { return getStatusFunc(); }
        public Metadata GetTrailers() { return getTrailersFunc(); }
        public void Dispose() { disposeAction(); }
    }

    public sealed class AsyncServerStreamingCall<TResponse> : IDisposable
    {
        private readonly Action disposeAction;
        private readonly Func<Status> getStatusFunc;
        private readonly Func<Metadata> getTrailersFunc;
        public AsyncServerStreamingCall(IAsyncStreamReader<TResponse> responseStream, Task<Metadata> responseHeadersAsync, Func<Status> getStatusFunc, Func<Metadata> getTrailersFunc, Action disposeAction)
        {
            ResponseStream = responseStream; ResponseHeadersAsync = responseHeadersAsync;
            this.getStatusFunc = getStatusFunc; this.getTrailersFunc = getTrailersFunc; this.disposeAction = disposeAction;
        }
        public IAsyncStreamReader<TResponse> ResponseStream { get; private set; }
        public Task<Metadata> ResponseHeadersAsync { get; private set; }
        public Status GetStatus() { return getStatusFunc(); }
        public Metadata GetTrailers() { return getTrailersFunc(); }
        public void Dispose() { disposeAction(); }
    }

    public sealed class AsyncDuplexStreamingCall<TRequest, TResponse> : IDisposable
    {
        private readonly Action disposeAction;
        private readonly Func<Status> getStatusFunc;
        private readonly Func<Metadata> getTrailersFunc;
        public AsyncDuplexStreamingCall(IClientStreamWriter<TRequest> requestStream, IAsyncStreamReader<TResponse> responseStream, Task<Metadata> responseHeadersAsync, Func<Status> getStatusFunc, Func<Metadata> getTrailersFunc, Action disposeAction)
        {
            RequestStream = requestStream; ResponseStream = responseStream; ResponseHeadersAsync = responseHeadersAsync;
            this.getStatusFunc = getStatusFunc; this.getTrailersFunc = getTrailersFunc; this.disposeAction = disposeAction;
        }
        public IClientStreamWriter<TRequest> RequestStream { get; private set; }
        public IAsyncStreamReader<TResponse> ResponseStream { get; private set; }
        public Task<Metadata> ResponseHeadersAsync { get; private set; }
        public Status GetStatus() { return getStatusFunc(); }
        public Metadata GetTrailers() { return getTrailersFunc(); }
        public void Dispose() { disposeAction(); }
    }

    public sealed class AsyncClientStreamingCall<TRequest, TResponse> : IDisposable
    {
        public IClientStreamWriter<TRequest> RequestStream { get; private set; }
        public Task<TResponse> ResponseAsync { get; private set; }
        public void Dispose() { }
    }

    public abstract class CallInvoker
    {
        public abstract TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;
        public abstract AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;
        public abstract AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;
        public abstract AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options)
            where TRequest : class where TResponse : class;
        public abstract AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string host, CallOptions options)
            where TRequest : class where TResponse : class;
    }
}
