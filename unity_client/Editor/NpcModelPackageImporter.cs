using System.IO;
using NpcRuntime.Unity.Package;
using Unity.InferenceEngine;
using UnityEditor;
using UnityEngine;

namespace NpcRuntime.Unity.Editor
{
    /// <summary>
    /// Turns a model package folder copied under Assets/ (manifest.json, model.onnx, tokenizer.json or
    /// policy.json) into an NpcModelPackage asset. Unity has already imported model.onnx as a ModelAsset
    /// (Inference Engine's ONNX importer) and the .json files as TextAssets; this wires them together and
    /// checks the manifest is a portable package the Sentis brain can run.
    /// </summary>
    public static class NpcModelPackageImporter
    {
        private const string MenuPath = "Assets/Create/NPC Runtime/Model Package From Folder";

        [MenuItem(MenuPath, false, 100)]
        public static void CreateFromSelectedFolder()
        {
            string folder = AssetDatabase.GetAssetPath(Selection.activeObject);
            string error;
            var package = CreateFromFolder(folder, out error);
            if (package == null)
            {
                EditorUtility.DisplayDialog("NPC Runtime", error, "OK");
                return;
            }
            Selection.activeObject = package;
        }

        [MenuItem(MenuPath, true)]
        public static bool CanCreateFromSelectedFolder()
        {
            return Selection.activeObject != null && AssetDatabase.IsValidFolder(AssetDatabase.GetAssetPath(Selection.activeObject));
        }

        /// <summary>Creates `folder`/NpcModelPackage.asset; null and a message naming the problem on failure.</summary>
        public static NpcModelPackage CreateFromFolder(string folder, out string error)
        {
            error = null;
            var manifest = AssetDatabase.LoadAssetAtPath<TextAsset>(folder + "/manifest.json");
            var model = AssetDatabase.LoadAssetAtPath<ModelAsset>(folder + "/model.onnx");
            if (manifest == null) { error = folder + " has no manifest.json: select the folder written by `npcrt export --target portable`."; return null; }
            if (model == null) { error = folder + "/model.onnx is not imported as a ModelAsset: is com.unity.ai.inference installed?"; return null; }
            ModelManifest parsed;
            try
            {
                parsed = ModelManifest.Parse(manifest.text);
                parsed.RequirePortable(parsed.Kind);
            }
            catch (System.Exception e) { error = e.Message; return null; }

            var package = ScriptableObject.CreateInstance<NpcModelPackage>();
            package.model = model;
            package.manifest = manifest;
            package.tokenizer = AssetDatabase.LoadAssetAtPath<TextAsset>(folder + "/tokenizer.json");
            package.policy = AssetDatabase.LoadAssetAtPath<TextAsset>(folder + "/policy.json");
            if (parsed.Kind == "causal-lm" && package.tokenizer == null) { error = folder + " has no tokenizer.json (a causal-lm package needs one)."; return null; }
            if (parsed.Kind == "policy" && package.policy == null) { error = folder + " has no policy.json (a policy package needs one)."; return null; }
            AssetDatabase.CreateAsset(package, AssetDatabase.GenerateUniqueAssetPath(folder + "/" + Path.GetFileName(folder) + ".asset"));
            AssetDatabase.SaveAssets();
            return package;
        }
    }

    /// <summary>Inspector of NpcModelPackage: the manifest's key facts, and what is wrong when it cannot run.</summary>
    [CustomEditor(typeof(NpcModelPackage))]
    public sealed class NpcModelPackageEditor : UnityEditor.Editor
    {
        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            var package = (NpcModelPackage)target;
            if (package.manifest == null) { EditorGUILayout.HelpBox("Assign manifest.json.", MessageType.Warning); return; }
            try
            {
                var m = package.ParseManifest();
                EditorGUILayout.Space();
                EditorGUILayout.LabelField("Name", m.Name);
                EditorGUILayout.LabelField("Kind / target", m.Kind + " / " + m.Target);
                EditorGUILayout.LabelField("Precision", m.Precision);
                if (m.Kind == "causal-lm")
                {
                    EditorGUILayout.LabelField("Layers / KV heads / head dim", m.NumLayers + " / " + m.NumKvHeads + " / " + m.HeadDim);
                    EditorGUILayout.LabelField("Vocab / context", m.VocabSize + " / " + m.ContextLength);
                }
                m.RequirePortable(m.Kind);
            }
            catch (System.Exception e)
            {
                EditorGUILayout.HelpBox(e.Message, MessageType.Error);
            }
        }
    }
}
