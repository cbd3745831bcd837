// Runs the NUnit-style tests of unity_client/Tests under Mono (no Unity, no NUnit console needed):
// every public method marked [Test] in a class marked [TestFixture], with [SetUp]/[TearDown].
// Prints one line per test and a final "N passed, M failed" line; exit code 1 on any failure.
using System;
using System.Linq;
using System.Reflection;
using NUnit.Framework;

public static class TestRunner
{
    public static int Main(string[] args)
    {
        int passed = 0, failed = 0, ignored = 0;
        string filter = args.Length > 0 ? args[0] : null;
        var fixtures = typeof(TestRunner).Assembly.GetTypes()
            .Where(t => t.GetCustomAttributes(typeof(TestFixtureAttribute), false).Length > 0)
            .OrderBy(t => t.FullName);
        foreach (var type in fixtures)
        {
            var methods = type.GetMethods(BindingFlags.Public | BindingFlags.Instance);
            var setUp = methods.FirstOrDefault(m => m.GetCustomAttributes(typeof(SetUpAttribute), false).Length > 0);
            var tearDown = methods.FirstOrDefault(m => m.GetCustomAttributes(typeof(TearDownAttribute), false).Length > 0);
            foreach (var test in methods.Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0).OrderBy(m => m.Name))
            {
                string name = type.Name + "." + test.Name;
                if (filter != null && !name.Contains(filter)) continue;
                object instance = Activator.CreateInstance(type);
                try
                {
                    if (setUp != null) setUp.Invoke(instance, null);
                    try { test.Invoke(instance, null); }
                    finally { if (tearDown != null) tearDown.Invoke(instance, null); }
                    passed++;
                    Console.WriteLine("PASS " + name);
                }
                catch (TargetInvocationException wrapped)
                {
                    var error = wrapped.InnerException;
                    if (error is IgnoreException) { ignored++; Console.WriteLine("SKIP " + name + ": " + error.Message); continue; }
                    failed++;
                    Console.WriteLine("FAIL " + name + ": " + error.GetType().Name + ": " + error.Message);
                    if (!(error is AssertionException)) Console.WriteLine(error.StackTrace);
                }
            }
        }
        if (ignored > 0) Console.WriteLine(ignored + " skipped");
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }
}
