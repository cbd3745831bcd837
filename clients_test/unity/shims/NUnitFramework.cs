// Test shim of the NUnit 3 API subset the package's EditMode tests use (Unity Test Framework ships NUnit 3.5),
// so the same test files run in Unity's Test Runner and under Mono with clients_test/unity/TestRunner.cs.
using System;
using System.Collections;

namespace NUnit.Framework
{
    [AttributeUsage(AttributeTargets.Class)] public sealed class TestFixtureAttribute : Attribute { }
    [AttributeUsage(AttributeTargets.Method)] public sealed class TestAttribute : Attribute { }
    [AttributeUsage(AttributeTargets.Method)] public sealed class SetUpAttribute : Attribute { }
    [AttributeUsage(AttributeTargets.Method)] public sealed class TearDownAttribute : Attribute { }

    public delegate void TestDelegate();

    public class AssertionException : Exception { public AssertionException(string message) : base(message) { } }
    public class IgnoreException : Exception { public IgnoreException(string message) : base(message) { } }

    public static class Assert
    {
        private static string Msg(string message) { return string.IsNullOrEmpty(message) ? "" : " (" + message + ")"; }
        public static void AreEqual(object expected, object actual, string message = null)
        {
            if (!Equals(expected, actual) && !NumericEqual(expected, actual))
                throw new AssertionException("expected <" + expected + "> but was <" + actual + ">" + Msg(message));
        }
        public static void AreEqual(double expected, double actual, double delta, string message = null)
        {
            if (Math.Abs(expected - actual) > delta) throw new AssertionException("expected " + expected + " +/- " + delta + " but was " + actual + Msg(message));
        }
        public static void AreNotEqual(object expected, object actual, string message = null)
        {
            if (Equals(expected, actual)) throw new AssertionException("expected a value other than <" + expected + ">" + Msg(message));
        }
        public static void AreSame(object expected, object actual, string message = null) { if (!ReferenceEquals(expected, actual)) throw new AssertionException("expected the same instance" + Msg(message)); }
        public static void IsTrue(bool condition, string message = null) { if (!condition) throw new AssertionException("expected true" + Msg(message)); }
        public static void IsFalse(bool condition, string message = null) { if (condition) throw new AssertionException("expected false" + Msg(message)); }
        public static void IsNull(object value, string message = null) { if (value != null) throw new AssertionException("expected null but was <" + value + ">" + Msg(message)); }
        public static void IsNotNull(object value, string message = null) { if (value == null) throw new AssertionException("expected not null" + Msg(message)); }
        public static void Fail(string message) { throw new AssertionException(message); }
        public static void Ignore(string message) { throw new IgnoreException(message); }
        public static T Throws<T>(TestDelegate code) where T : Exception
        {
            try { code(); }
            catch (T expected) { return expected; }
            catch (Exception other) { throw new AssertionException("expected " + typeof(T).Name + " but got " + other.GetType().Name + ": " + other.Message); }
            throw new AssertionException("expected " + typeof(T).Name + " but nothing was thrown");
        }
        private static bool NumericEqual(object a, object b)
        {
            if (a == null || b == null || !(a is IConvertible) || !(b is IConvertible) || a is string || b is string) return false;
            try { return Convert.ToDouble(a) == Convert.ToDouble(b); } catch (Exception) { return false; }
        }
    }

    public static class CollectionAssert
    {
        public static void AreEqual(IEnumerable expected, IEnumerable actual, string message = null)
        {
            var e = expected.GetEnumerator();
            var a = actual.GetEnumerator();
            int index = 0;
            while (true)
            {
                bool more = e.MoveNext(), moreActual = a.MoveNext();
                if (!more && !moreActual) return;
                if (more != moreActual) throw new AssertionException("collections differ in length at index " + index + (message == null ? "" : " (" + message + ")"));
                if (!Equals(e.Current, a.Current) && !(e.Current is IConvertible && a.Current is IConvertible && !(e.Current is string) && Convert.ToDouble(e.Current) == Convert.ToDouble(a.Current)))
                    throw new AssertionException("collections differ at index " + index + ": expected <" + e.Current + "> but was <" + a.Current + ">" + (message == null ? "" : " (" + message + ")"));
                index++;
            }
        }
    }

    public static class StringAssert
    {
        public static void Contains(string expected, string actual, string message = null)
        {
            if (actual == null || !actual.Contains(expected)) throw new AssertionException("expected a string containing \"" + expected + "\" but was \"" + actual + "\"" + (message == null ? "" : " (" + message + ")"));
        }
    }
}
