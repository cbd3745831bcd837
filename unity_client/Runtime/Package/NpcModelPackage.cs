using Unity.InferenceEngine;
using UnityEngine;

namespace NpcRuntime.Unity.Package
{
    /// <summary>
    /// A model package (docs/model-package.md) imported into a Unity project: Unity imports model.onnx as a
    /// ModelAsset (Inference Engine's ONNX importer) and the .json files as TextAssets; this asset ties them
    /// together. Create it with Assets > Create > NPC Runtime > Model Package From Folder (Editor/), or by hand.
    /// ModelLoader.Load(ModelAsset) is the documented runtime entry point for imported models
    /// (docs.unity3d.com/Packages/com.unity.ai.inference@2.6/api/Unity.InferenceEngine.ModelLoader.html).
    /// </summary>
    [CreateAssetMenu(fileName = "NpcModelPackage", menuName = "NPC Runtime/Model Package", order = 100)]
    public sealed class NpcModelPackage : ScriptableObject
    {
        [Tooltip("model.onnx of a portable package, imported by Inference Engine.")]
        public ModelAsset model;
        [Tooltip("manifest.json of the package.")]
        public TextAsset manifest;
        [Tooltip("tokenizer.json (causal-lm packages).")]
        public TextAsset tokenizer;
        [Tooltip("policy.json (policy packages).")]
        public TextAsset policy;

        public ModelManifest ParseManifest()
        {
            if (manifest == null) throw new System.InvalidOperationException("NpcModelPackage '" + name + "' has no manifest.json assigned");
            return ModelManifest.Parse(manifest.text);
        }
    }
}
