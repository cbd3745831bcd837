// Test shim of the UnityEngine / UnityEditor members the package uses (Unity 6, 6000.0 scripting API:
// docs.unity3d.com/6000.0/Documentation/ScriptReference). Signatures as documented; bodies are minimal.
using System;
using System.Collections.Generic;

namespace UnityEngine
{
    public class Object
    {
        public string name { get; set; }
        public static implicit operator bool(Object exists) { return !ReferenceEquals(exists, null); }
        public static void Destroy(Object obj) { }
    }

    public class Component : Object
    {
        public GameObject gameObject { get { return null; } }
        public T GetComponent<T>() { return default(T); }
    }

    public class Behaviour : Component
    {
        public bool enabled { get; set; }
        public bool isActiveAndEnabled { get { return enabled; } }
    }

    public class MonoBehaviour : Behaviour
    {
        public Coroutine StartCoroutine(System.Collections.IEnumerator routine) { return new Coroutine(); }
        public void StopCoroutine(Coroutine routine) { }
    }

    public sealed class Coroutine { }

    public sealed class GameObject : Object { }

    public class ScriptableObject : Object
    {
        public static T CreateInstance<T>() where T : ScriptableObject { return (T)Activator.CreateInstance(typeof(T)); }
    }

    public class TextAsset : Object
    {
        private readonly string content;
        public TextAsset() { content = ""; }
        public TextAsset(string text) { content = text; }
        public string text { get { return content; } }
        public byte[] bytes { get { return System.Text.Encoding.UTF8.GetBytes(content); } }
    }

    public static class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message) { Console.Error.WriteLine("[Unity LogError] " + message); }
        public static void LogException(Exception exception) { Console.Error.WriteLine("[Unity LogException] " + exception); }
    }

    public static class Time
    {
        public static int frameCount { get; set; }
        public static float time { get; set; }
        public static float deltaTime { get; set; }
        public static double realtimeSinceStartupAsDouble { get { return Environment.TickCount / 1000.0; } }
    }

    public static class Application
    {
        public static string streamingAssetsPath { get { return "StreamingAssets"; } }
        public static string unityVersion { get { return "6000.0.0f1"; } }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = true)]
    public class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public sealed class RangeAttribute : Attribute { public RangeAttribute(float min, float max) { } }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public sealed class MinAttribute : Attribute { public MinAttribute(float min) { } }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public sealed class TextAreaAttribute : Attribute { public TextAreaAttribute(int minLines, int maxLines) { } }

    [AttributeUsage(AttributeTargets.Class, Inherited = false)]
    public sealed class CreateAssetMenuAttribute : Attribute
    {
        public string fileName { get; set; }
        public string menuName { get; set; }
        public int order { get; set; }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string menuName) { } }

    [AttributeUsage(AttributeTargets.Class, Inherited = false)]
    public sealed class DisallowMultipleComponent : Attribute { }
}

namespace UnityEngine.Events
{
    public delegate void UnityAction();
    public delegate void UnityAction<T0>(T0 arg0);
    public delegate void UnityAction<T0, T1>(T0 arg0, T1 arg1);

    public abstract class UnityEventBase
    {
        public void RemoveAllListeners() { }
    }

    [Serializable]
    public class UnityEvent : UnityEventBase
    {
        private readonly List<UnityAction> calls = new List<UnityAction>();
        public void AddListener(UnityAction call) { calls.Add(call); }
        public void RemoveListener(UnityAction call) { calls.Remove(call); }
        public void Invoke() { foreach (var c in calls.ToArray()) c(); }
    }

    [Serializable]
    public class UnityEvent<T0> : UnityEventBase
    {
        private readonly List<UnityAction<T0>> calls = new List<UnityAction<T0>>();
        public void AddListener(UnityAction<T0> call) { calls.Add(call); }
        public void RemoveListener(UnityAction<T0> call) { calls.Remove(call); }
        public void Invoke(T0 arg0) { foreach (var c in calls.ToArray()) c(arg0); }
    }

    [Serializable]
    public class UnityEvent<T0, T1> : UnityEventBase
    {
        private readonly List<UnityAction<T0, T1>> calls = new List<UnityAction<T0, T1>>();
        public void AddListener(UnityAction<T0, T1> call) { calls.Add(call); }
        public void RemoveListener(UnityAction<T0, T1> call) { calls.Remove(call); }
        public void Invoke(T0 arg0, T1 arg1) { foreach (var c in calls.ToArray()) c(arg0, arg1); }
    }
}
