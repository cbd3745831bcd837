// NpcRuntime module rules (Unreal Engine 5.4+).
//
// * NNE (module "NNE", runtime plugin "NNERuntimeORT" enabled in NpcRuntime.uplugin) runs the on-device
//   brain: UE::NNE::GetRuntime<INNERuntimeCPU>("NNERuntimeORTCpu").
// * The engine-agnostic core (../../core) is compiled into this module: its pure-logic sources through
//   Private/NpcCoreSources.cpp, its public headers through the include path below.
// * The gRPC client of the core needs gRPC + protobuf built for the target platform. Build the core
//   with CMake (unreal_client/core/CMakeLists.txt) for that platform and point NPC_CORE_SDK at a folder
//   holding include/ (grpc, google/protobuf, generated npc_proto) and lib/ (libnpc_core, libnpc_proto_cpp (libnpc_core_logic is skipped: compiled in),
//   grpc++, grpc, gpr, protobuf, absl*, ssl, crypto, z, cares, re2, upb, address_sorting). Without it the
//   module builds with NPC_WITH_GRPC=0: the local NNE brain works, the server connection is disabled.
using System;
using System.IO;
using UnrealBuildTool;

public class NpcRuntime : ModuleRules
{
	public NpcRuntime(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		CppStandard = CppStandardVersion.Cpp20;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "NNE" });
		PrivateDependencyModuleNames.AddRange(new string[] { "Projects" });

		string CoreDir = Path.GetFullPath(Path.Combine(ModuleDirectory, "..", "..", "core"));
		PublicIncludePaths.Add(Path.Combine(CoreDir, "include"));
		PrivateIncludePaths.Add(Path.Combine(CoreDir, "src"));

		string Sdk = Environment.GetEnvironmentVariable("NPC_CORE_SDK");
		bool bWithGrpc = !string.IsNullOrEmpty(Sdk) && Directory.Exists(Path.Combine(Sdk, "lib"));
		PublicDefinitions.Add("NPC_WITH_GRPC=" + (bWithGrpc ? "1" : "0"));
		if (bWithGrpc)
		{
			PrivateIncludePaths.Add(Path.Combine(Sdk, "include"));
			string LibDir = Path.Combine(Sdk, "lib");
			string Pattern = Target.Platform == UnrealTargetPlatform.Win64 ? "*.lib" : "*.a";
			foreach (string Lib in Directory.GetFiles(LibDir, Pattern))
			{
				// The pure-logic part is compiled into this module (Private/NpcCoreSources.cpp).
				if (!Path.GetFileName(Lib).Contains("npc_core_logic") && !Path.GetFileName(Lib).Contains("npc_core_nogrpc"))
				{
					PublicAdditionalLibraries.Add(Lib);
				}
			}
			if (Target.Platform == UnrealTargetPlatform.Win64)
			{
				PublicSystemLibraries.AddRange(new string[] { "ws2_32.lib", "crypt32.lib", "iphlpapi.lib" });
			}
		}
	}
}
