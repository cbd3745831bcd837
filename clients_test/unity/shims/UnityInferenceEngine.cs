// Test shim of Unity Inference Engine 2.x (com.unity.ai.inference, namespace Unity.InferenceEngine,
// formerly Unity.Sentis). Public members used by the package, with the documented signatures:
//   ModelLoader.Load(ModelAsset) / Load(string)       docs.unity3d.com/Packages/com.unity.ai.inference@2.6/api/Unity.InferenceEngine.ModelLoader.html
//   new Worker(Model, BackendType), SetInput(string, Tensor), Schedule(), ScheduleIterable(),
//   PeekOutput(string), CopyOutput(string, ref Tensor), Dispose()   (Worker.cs of the package source)
//   Tensor: shape, count, dataType, ReadbackRequest(), IsReadbackRequestDone(), CompleteAllPendingOperations(),
//   Dispose(); Tensor<T>(TensorShape, T[] srcData, int dataStartIndex = 0), Tensor<T>(TensorShape, bool clearOnInit = true),
//   DownloadToArray()                                    (Tensor.cs / TensorT.cs of the package source)
//   TensorShape(int d0) ... TensorShape(int d3, int d2, int d1, int d0), rank, length, this[int]
// Deviation: the real Tensor<T> is `where T : unmanaged` (C# 7.3); Mono's mcs lacks it, so `where T : struct`.
//
// TEST HOOKS (not part of the real API, marked "Test"): Model.TestCompute and Model.TestLayerCount let the tests
// run a fake model through the real call sequence; Tensor.TestReadbackPolls makes readback take N polls.
using System;
using System.Collections;
using System.Collections.Generic;
using UnityEngine;

namespace Unity.InferenceEngine
{
    public enum BackendType { GPUCompute, GPUPixel, CPU }

    public enum DataType { Float, Int, Short, Byte }

    public class ModelAsset : ScriptableObject { }

    public class Model
    {
        public struct Input
        {
            public string name;
            public int index;
            public DataType dataType;
        }

        public struct Output
        {
            public string name;
            public int index;
        }

        public List<Input> inputs = new List<Input>();
        public List<Output> outputs = new List<Output>();

        /// <summary>TEST HOOK: computes output tensors from input tensors when a shim Worker finishes scheduling.</summary>
        public Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> TestCompute;
        /// <summary>TEST HOOK: number of layers ScheduleIterable yields.</summary>
        public int TestLayerCount = 4;
    }

    public static class ModelLoader
    {
        /// <summary>TEST HOOK: what Load returns in the shim.</summary>
        public static Func<Model> TestFactory;
        public static Model Load(ModelAsset modelAsset) { return TestFactory != null ? TestFactory() : new Model(); }
        public static Model Load(string path) { return TestFactory != null ? TestFactory() : new Model(); }
    }

    public struct TensorShape
    {
        private readonly int[] dims;
        public TensorShape(int d0) { dims = new[] { d0 }; }
        public TensorShape(int d1, int d0) { dims = new[] { d1, d0 }; }
        public TensorShape(int d2, int d1, int d0) { dims = new[] { d2, d1, d0 }; }
        public TensorShape(int d3, int d2, int d1, int d0) { dims = new[] { d3, d2, d1, d0 }; }
        public int rank { get { return dims == null ? 0 : dims.Length; } }
        public int length { get { int n = 1; if (dims != null) foreach (var d in dims) n *= d; return n; } }
        public int this[int axis] { get { return dims[axis < 0 ? dims.Length + axis : axis]; } }
        public override string ToString() { return "(" + string.Join(", ", Array.ConvertAll(dims ?? new int[0], d => d.ToString())) + ")"; }
    }

    public abstract class Tensor : IDisposable
    {
        protected TensorShape m_Shape;
        protected bool m_Disposed;
        protected bool m_ReadbackRequested;
        /// <summary>TEST HOOK: polls of IsReadbackRequestDone() that answer false after ReadbackRequest().</summary>
        public int TestReadbackPolls;

        public TensorShape shape { get { return m_Shape; } }
        public int count { get { return m_Shape.length; } }
        public abstract DataType dataType { get; }
        public bool TestDisposed { get { return m_Disposed; } }

        public void ReadbackRequest() { m_ReadbackRequested = true; }
        public bool IsReadbackRequestDone()
        {
            if (!m_ReadbackRequested) return false;
            if (TestReadbackPolls > 0) { TestReadbackPolls--; return false; }
            return true;
        }
        public void CompleteAllPendingOperations() { TestReadbackPolls = 0; }
        public abstract void Reshape(TensorShape shape);
        public void Dispose() { m_Disposed = true; }
        internal abstract Tensor CloneEmpty();
        internal abstract void CopyFrom(Tensor source);
    }

    public class Tensor<T> : Tensor where T : struct
    {
        private T[] data;

        public Tensor(TensorShape shape, T[] srcData, int dataStartIndex = 0)
        {
            m_Shape = shape;
            if (srcData.Length - dataStartIndex < shape.length) throw new ArgumentException("RangeError: array length is too small compared to shape length " + shape);
            data = new T[shape.length];
            Array.Copy(srcData, dataStartIndex, data, 0, shape.length);
        }

        public Tensor(TensorShape shape, bool clearOnInit = true)
        {
            m_Shape = shape;
            data = new T[shape.length];
        }

        public override DataType dataType { get { return typeof(T) == typeof(float) ? DataType.Float : DataType.Int; } }

        public override void Reshape(TensorShape shape)
        {
            m_Shape = shape;
            if (data.Length < shape.length) Array.Resize(ref data, shape.length);
        }

        public T[] DownloadToArray()
        {
            if (m_Disposed) throw new ObjectDisposedException("Tensor");
            var copy = new T[shape.length];
            Array.Copy(data, copy, copy.Length);
            return copy;
        }

        internal override Tensor CloneEmpty() { return new Tensor<T>(shape); }
        internal override void CopyFrom(Tensor source)
        {
            var src = (Tensor<T>)source;
            Reshape(src.shape);
            Array.Copy(src.data, data, src.shape.length);
        }
    }

    public class Worker : IDisposable
    {
        private readonly Model model;
        private readonly Dictionary<string, Tensor> inputs = new Dictionary<string, Tensor>();
        private Dictionary<string, Tensor> outputs = new Dictionary<string, Tensor>();
        public int TestSchedules;

        public Worker(Model model, BackendType backendType) { this.model = model; }

        public void SetInput(string name, Tensor input)
        {
            bool known = false;
            foreach (var i in model.inputs) if (i.name == name) known = true;
            if (!known) throw new ArgumentException("Cannot set input tensor " + name + " as model does not contain an input with that name");
            inputs[name] = input;
        }

        public void Schedule()
        {
            var it = ScheduleIterable();
            while (it.MoveNext()) { }
        }

        public void Schedule(params Tensor[] inputTensors)
        {
            for (int i = 0; i < inputTensors.Length; i++) SetInput(model.inputs[i].name, inputTensors[i]);
            Schedule();
        }

        public IEnumerator ScheduleIterable()
        {
            TestSchedules++;
            foreach (var old in outputs.Values) old.Dispose(); // outputs are valid only until the next schedule
            outputs = new Dictionary<string, Tensor>();
            for (int layer = 0; layer < model.TestLayerCount - 1; layer++) yield return null;
            outputs = model.TestCompute != null ? model.TestCompute(new Dictionary<string, Tensor>(inputs)) : new Dictionary<string, Tensor>();
            yield return null;
        }

        public Tensor PeekOutput(string name)
        {
            Tensor t;
            if (!outputs.TryGetValue(name, out t)) throw new ArgumentException("Cannot peek output tensor " + name);
            return t;
        }

        public void CopyOutput(string name, ref Tensor tensor)
        {
            var src = PeekOutput(name);
            if (tensor == null) tensor = src.CloneEmpty();
            tensor.CopyFrom(src);
        }

        public void Dispose() { }
    }
}
