using System;
using System.Collections.Generic;
using NpcRuntime.Unity.Package;
using Unity.InferenceEngine;

namespace NpcRuntime.Unity.Brain
{
    /// <summary>A reflex decision of the policy model.</summary>
    public struct PolicyDecision
    {
        public int actionIndex;
        public string action;
        /// <summary>Max softmax probability, 0-1 (the model's `confidence` output).</summary>
        public float confidence;
        public float[] actionLogits;
    }

    /// <summary>
    /// Runs a portable `policy` package: observations float32 [1, num_features] -> action_logits float32
    /// [1, num_actions] and confidence float32 [1] (docs/model-package.md, Policy I/O). The network is tiny,
    /// so a pass is scheduled whole with Worker.Schedule(); the result is read back without blocking:
    /// Request() schedules and calls ReadbackRequest(); TryGetDecision() polls IsReadbackRequestDone().
    /// </summary>
    public sealed class SentisPolicyBrain : IDisposable
    {
        private readonly Worker worker;
        private readonly PolicySpec spec;
        private Tensor<float> input;
        private Tensor<float> actionLogits;
        private Tensor<float> confidence;

        public PolicySpec Spec { get { return spec; } }
        public bool Pending { get { return actionLogits != null; } }

        public SentisPolicyBrain(NpcModelPackage package, BackendType backend = BackendType.CPU)
            : this(package.ParseManifest(), RequireText(package), ModelLoader.Load(package.model), backend)
        {
        }

        public SentisPolicyBrain(ModelManifest manifest, string policyJson, Model model, BackendType backend)
        {
            manifest.RequirePortable("policy");
            spec = PolicySpec.Parse(policyJson);
            if (manifest.PolicyFeatures > 0 && manifest.PolicyFeatures != spec.Features.Count)
                throw new FormatException("policy.json names " + spec.Features.Count + " features but manifest.json policy.num_features is " + manifest.PolicyFeatures);
            worker = new Worker(model, backend);
        }

        /// <summary>Schedules one decision from named observation values (names from policy.json).</summary>
        public void Request(IDictionary<string, double> observation)
        {
            if (Pending) throw new InvalidOperationException("a policy decision is still pending; poll TryGetDecision first");
            var features = spec.Featurize(observation);
            if (input != null) input.Dispose();
            input = new Tensor<float>(new TensorShape(1, features.Length), features);
            worker.SetInput("observations", input);
            worker.Schedule();
            actionLogits = worker.PeekOutput("action_logits") as Tensor<float>;
            confidence = worker.PeekOutput("confidence") as Tensor<float>;
            actionLogits.ReadbackRequest();
            confidence.ReadbackRequest();
        }

        /// <summary>True (and the decision) once both outputs are read back; never blocks.</summary>
        public bool TryGetDecision(out PolicyDecision decision)
        {
            decision = default(PolicyDecision);
            if (!Pending || !actionLogits.IsReadbackRequestDone() || !confidence.IsReadbackRequestDone()) return false;
            var logits = actionLogits.DownloadToArray();
            var conf = confidence.DownloadToArray();
            actionLogits = null;
            confidence = null;
            int best = Decoding.TokenSampler.ArgMax(logits, 0, logits.Length);
            decision.actionIndex = best;
            decision.action = best < spec.Actions.Count ? spec.Actions[best] : "";
            decision.confidence = conf.Length > 0 ? conf[0] : 0f;
            decision.actionLogits = logits;
            return true;
        }

        private static string RequireText(NpcModelPackage package)
        {
            if (package.policy == null) throw new InvalidOperationException("NpcModelPackage '" + package.name + "' has no policy.json assigned");
            return package.policy.text;
        }

        public void Dispose()
        {
            if (input != null) input.Dispose();
            worker.Dispose();
        }
    }
}
