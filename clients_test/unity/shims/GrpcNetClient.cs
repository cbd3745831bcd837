// Test shim of the optional transport the sample uses under NPC_GRPC_NET: Grpc.Net.Client's GrpcChannel
// (grpc-dotnet: GrpcChannel.ForAddress(string, GrpcChannelOptions), GrpcChannelOptions.HttpHandler /
// DisposeHttpClient, ChannelBase.CreateCallInvoker()) and Cysharp's YetAnotherHttpHandler (Http2Only).
// System.Net.Http.HttpMessageHandler is declared here too, as the shims do not reference System.Net.Http.dll.
namespace System.Net.Http
{
    public abstract class HttpMessageHandler : IDisposable { public void Dispose() { } }
}

namespace Grpc.Net.Client
{
    public sealed class GrpcChannelOptions
    {
        public System.Net.Http.HttpMessageHandler HttpHandler { get; set; }
        public bool DisposeHttpClient { get; set; }
    }

    public sealed class GrpcChannel
    {
        public static GrpcChannel ForAddress(string address, GrpcChannelOptions channelOptions) { return new GrpcChannel(); }
        public Grpc.Core.CallInvoker CreateCallInvoker() { return null; }
    }
}

namespace Cysharp.Net.Http
{
    public class YetAnotherHttpHandler : System.Net.Http.HttpMessageHandler
    {
        public bool Http2Only { get; set; }
    }
}
