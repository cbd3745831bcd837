using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.Proto.V1;
using NpcRuntime.Unity.Brain;
using NpcRuntime.Unity.Decoding;
using NpcRuntime.Unity.Net;
using NpcRuntime.Unity.Package;
using Unity.InferenceEngine;
using UnityEngine;
using UnityEngine.Events;

namespace NpcRuntime.Unity.Agent
{
    [Serializable] public sealed class NpcActionEvent : UnityEvent<string, string> { }   // (action, reason)
    [Serializable] public sealed class NpcDialogueEvent : UnityEvent<string> { }         // a line, a sentence, or a text delta

    /// <summary>
    /// An NPC in the scene. Collects what it perceives (numeric values, tags, what the player says, game
    /// events) and, every <c>stepIntervalSeconds</c>, either
    ///   - Server mode: sends it to the runtime's NpcAgent.StepStream (or Step, with streamDialogue off) and
    ///     raises the action as soon as it is chosen, each sentence of the line as it is decoded, then the line, or
    ///   - Local mode: runs the on-device policy model for a reflex action (Sentis) and, when the player spoke,
    ///     the on-device dialogue model, frame-sliced, raising the line token by token.
    /// Events: UnityEvents for the Inspector and C# events for code.
    /// </summary>
    [AddComponentMenu("NPC Runtime/NPC Agent")]
    public sealed class NpcAgent : MonoBehaviour
    {
        public enum BrainMode { Server, Local }

        [Header("Identity")]
        [SerializeField] private string npcId = "npc-01";
        [SerializeField] private string displayName = "Bram";
        [SerializeField] private string role = "guard";
        [SerializeField] private string[] traits = new string[0];
        [TextArea(2, 6)] [SerializeField] private string backstory = "";
        [Tooltip("Built-in FSM of the server (guard, merchant, villager).")]
        [SerializeField] private string fsmName = "guard";

        [Header("Brain")]
        [SerializeField] private BrainMode mode = BrainMode.Server;
        [SerializeField] private NpcConnection connection;
        [SerializeField] private NpcModelPackage dialoguePackage;
        [SerializeField] private NpcModelPackage policyPackage;
        [SerializeField] private BackendType backend = BackendType.CPU;
        [Tooltip("Milliseconds of local decoding per frame.")]
        [SerializeField] private float localBudgetMs = 2f;
        [SerializeField] private int maxLineTokens = 48;
        [Tooltip("Seconds between decisions.")]
        [SerializeField] private float stepIntervalSeconds = 0.5f;
        [Tooltip("Wall time the server may take for a decision, ms (0 = server default).")]
        [SerializeField] private float stepDeadlineMs = 150f;
        [Tooltip("Server mode: stream each decision (action first, then the line sentence by sentence). Turned off by itself when the server has no StepStream.")]
        [SerializeField] private bool streamDialogue = true;

        [Header("Events")]
        public NpcActionEvent onAction = new NpcActionEvent();
        public NpcDialogueEvent onDialogue = new NpcDialogueEvent();
        public NpcDialogueEvent onDialogueDelta = new NpcDialogueEvent();
        public NpcDialogueEvent onSentence = new NpcDialogueEvent();

        public event Action<Decision> DecisionReceived;
        /// <summary>Server mode with streamDialogue: the action, before the line is decoded.</summary>
        public event Action<ActionChosen> ActionReceived;
        public event Action<PolicyDecision> ReflexDecided;
        public event Action<Exception> Failed;

        private readonly Observation observation = new Observation();
        private readonly List<GameEvent> pendingEvents = new List<GameEvent>();
        private string pendingUtterance = "";
        private float nextStepTime;
        private bool registered;
        private bool stepInFlight;
        private SentisNpcBrain dialogueBrain;
        private SentisPolicyBrain policyBrain;
        private NpcDialogueStream dialogueStream;

        public string NpcId { get { return npcId; } }
        public BrainMode Mode { get { return mode; } set { mode = value; } }
        public Decision LastDecision { get; private set; }

        public void Perceive(string key, double value) { observation.Values[key] = value; }
        public void SetTag(string key, string value) { observation.Tags[key] = value; }
        public void Hear(string playerUtterance) { pendingUtterance = playerUtterance ?? ""; nextStepTime = 0f; }
        public void Notify(GameEvent gameEvent) { pendingEvents.Add(gameEvent); nextStepTime = 0f; }

        private void Start()
        {
            if (mode == BrainMode.Local) CreateLocalBrains();
        }

        private void Update()
        {
            if (mode == BrainMode.Local && dialogueBrain != null && dialogueBrain.IsBusy) dialogueBrain.Tick();
            if (Time.time < nextStepTime) return;
            nextStepTime = Time.time + stepIntervalSeconds;
            observation.GameTimeS = Time.time;
            if (mode == BrainMode.Server) StepOnServer();
            else StepLocally();
        }

        private void StepOnServer()
        {
            if (connection == null || !connection.IsReady || stepInFlight) return;
            stepInFlight = true;
            NpcConnection.Observe(StepOnServerAsync());
        }

        private async Task StepOnServerAsync()
        {
            try
            {
                if (!registered)
                {
                    var register = new RegisterNpcRequest
                    {
                        NpcId = npcId,
                        Persona = new Persona { Name = displayName, Role = role, Backstory = backstory ?? "" },
                        FsmName = fsmName,
                        Replace = true,
                    };
                    register.Persona.Traits.Add(traits);
                    await connection.Agent.RegisterNpcAsync(register);
                    registered = true;
                }
                var request = new StepRequest { NpcId = npcId, Observation = observation.Clone(), DeadlineMs = stepDeadlineMs };
                request.Observation.PlayerUtterance = pendingUtterance;
                request.Events.Add(pendingEvents);
                pendingEvents.Clear();
                pendingUtterance = "";
                Decision decision = null;
                if (streamDialogue)
                {
                    try { decision = await StreamDialogue().Start(request); }
                    catch (RpcException error) when (error.StatusCode == StatusCode.Unimplemented)
                    {
                        // An older server: no StepStream (raised before any chunk, so nothing was raised yet).
                        Debug.LogWarning("NpcAgent " + npcId + ": the server has no StepStream; using Step");
                        streamDialogue = false;
                    }
                }
                if (decision == null)
                {
                    decision = await connection.Agent.StepAsync(request);
                    onAction.Invoke(decision.Action, decision.Reason);
                }
                LastDecision = decision;
                if (DecisionReceived != null) DecisionReceived(decision);
                if (decision.Dialogue.Length > 0) onDialogue.Invoke(decision.Dialogue);
            }
            catch (Exception error)
            {
                if (Failed != null) Failed(error);
                else throw;
            }
            finally
            {
                stepInFlight = false;
            }
        }

        private NpcDialogueStream StreamDialogue()
        {
            if (dialogueStream != null) return dialogueStream;
            dialogueStream = new NpcDialogueStream(connection.Agent);
            // Raised on the main thread (the stream is started from Update).
            dialogueStream.OnAction += chosen =>
            {
                if (ActionReceived != null) ActionReceived(chosen);
                onAction.Invoke(chosen.Action, "streamed: " + chosen.Source);
            };
            dialogueStream.OnSentence += sentence => onSentence.Invoke(sentence);
            return dialogueStream;
        }

        private void CreateLocalBrains()
        {
            if (policyPackage != null) policyBrain = new SentisPolicyBrain(policyPackage, backend);
            if (dialoguePackage != null)
            {
                dialogueBrain = new SentisNpcBrain(dialoguePackage, backend, localBudgetMs);
                dialogueBrain.TokenDecoded += (id, delta) => { if (delta.Length > 0) onDialogueDelta.Invoke(delta); };
                dialogueBrain.Finished += (text, reason) => { if (text.Length > 0) onDialogue.Invoke(text); };
            }
        }

        private void StepLocally()
        {
            if (policyBrain != null)
            {
                PolicyDecision reflex;
                if (policyBrain.TryGetDecision(out reflex))
                {
                    if (ReflexDecided != null) ReflexDecided(reflex);
                    onAction.Invoke(reflex.action, "policy: confidence " + reflex.confidence.ToString("0.00"));
                }
                if (!policyBrain.Pending) policyBrain.Request(observation.Values);
            }
            if (dialogueBrain != null && pendingUtterance.Length > 0 && !dialogueBrain.IsBusy)
            {
                // The built-in dialogue model's chat format (export/npc_export/builtin/tokenizer.py).
                string turn = "<|user|>" + pendingUtterance + "<|end|><|assistant|>";
                if (dialogueBrain.ContextTokens == 0) turn = "<|system|>" + PersonaPrompt() + "<|end|>" + turn;
                pendingUtterance = "";
                dialogueBrain.Begin(turn, maxLineTokens, SamplingSettings.Greedy, new[] { "<|end|>" });
            }
        }

        private string PersonaPrompt()
        {
            var traitText = traits != null && traits.Length > 0 ? " You are " + string.Join(", ", traits) + "." : "";
            return "You are " + displayName + ", a " + role + "." + traitText + (string.IsNullOrEmpty(backstory) ? "" : " " + backstory);
        }

        private void OnDestroy()
        {
            if (dialogueStream != null) dialogueStream.Dispose();
            if (dialogueBrain != null) dialogueBrain.Dispose();
            if (policyBrain != null) policyBrain.Dispose();
        }
    }
}
