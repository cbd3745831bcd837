using System;
using System.Collections.Generic;
using System.IO;
using NpcRuntime.Unity.Json;
using NUnit.Framework;

namespace NpcRuntime.Unity.Tests
{
    /// <summary>Finds the shared vectors (clients_test/vectors) of the repository the package lives in.</summary>
    internal static class TestVectors
    {
        public static string RepoRoot()
        {
            var env = Environment.GetEnvironmentVariable("NPC_REPO_ROOT");
            if (!string.IsNullOrEmpty(env) && Directory.Exists(Path.Combine(env, "clients_test", "vectors"))) return env;
            foreach (var start in new[] { Directory.GetCurrentDirectory(), AppDomain.CurrentDomain.BaseDirectory })
            {
                var dir = new DirectoryInfo(start);
                while (dir != null)
                {
                    if (Directory.Exists(Path.Combine(dir.FullName, Path.Combine("clients_test", "vectors")))) return dir.FullName;
                    dir = dir.Parent;
                }
            }
            Assert.Ignore("clients_test/vectors not found (set NPC_REPO_ROOT to the npc-runtime checkout)");
            return null;
        }

        public static Dictionary<string, object> Load(string file)
        {
            var path = Path.Combine(Path.Combine(RepoRoot(), Path.Combine("clients_test", "vectors")), file);
            return MiniJson.ParseObject(File.ReadAllText(path), file);
        }

        public static string ReadRepoFile(string relative) { return File.ReadAllText(Path.Combine(RepoRoot(), relative)); }

        public static byte[] FromHex(string hex)
        {
            var bytes = new byte[hex.Length / 2];
            for (int i = 0; i < bytes.Length; i++) bytes[i] = Convert.ToByte(hex.Substring(2 * i, 2), 16);
            return bytes;
        }

        public static string ToHex(byte[] bytes) { return BitConverter.ToString(bytes).Replace("-", "").ToLowerInvariant(); }

        public static List<int> Ints(object list)
        {
            var result = new List<int>();
            foreach (var v in (List<object>)list) result.Add((int)(double)v);
            return result;
        }
    }
}
