"""Built-in FSM definitions (YAML), loaded by `npc_runtime.agent.fsm_loader.load_builtin_fsm`."""
