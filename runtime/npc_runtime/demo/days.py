"""`npcrt demo --days N`: the village learns from its teacher, one in-game day at a time.

A day is `--seconds` of game time (played at `--speed` game seconds per wall second). At the end of each day
the village pauses, the escalations so far (the records the agent writes, agent/distill/records.py; that
day's and the earlier days', see DayLoop.seen) train a new policy version from the current one
(agent/distill), and the new version is swapped in as the default through the same PolicyVersions the
server's SIGHUP reload uses; the NPCs, their memories and the sessions go on. A version the gate refuses
(or a day without a usable record) keeps the current one.

The teacher is the offline `rules` provider unless `--provider` names another: it answers with the rule the
built-in policy was trained on, kept inside the FSM's allowed actions; its usage is priced as TEACHER_PRICED_AS
(what the same escalations would cost a cloud model), so the cost column means something offline.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

TEACHER_PRICED_AS = "gpt-4o-mini"
# the teacher is free and local: the budgets must not hide how often the NPCs need it
DAY_FLAGS = {"budgets.npc_calls_per_min": 100_000, "budgets.npc_tokens_per_min": 100_000_000,
             "budgets.global_calls_per_min": 100_000, "budgets.global_tokens_per_min": 100_000_000,
             "budgets.global_cost_per_hour_usd": 1_000.0}
ATTEMPTED = ("ok", "rejected", "timeout", "error")
# escalation triggers (agent/escalation.py, in its order of precedence): story_critical is escalated whatever the
# policy knows, by design; low_confidence and low_margin come from the policy's own proposal, so they are what
# a better policy reduces; novelty (no memory of the NPC resembles the moment) falls as memories accumulate
POLICY_TRIGGERS = ("low_confidence", "low_margin")


class DayRecords:
    """The agent's records sink, teed: every record still goes to the RecordLog (if any), and the current
    day's are kept in memory for the end-of-day distillation."""

    def __init__(self, inner: Any):
        self.inner = inner
        self._lock = threading.Lock()
        self.today: list[dict] = []

    def append(self, record: Mapping[str, Any]) -> None:
        if self.inner is not None:
            self.inner.append(record)
        with self._lock:
            self.today.append(dict(record))

    def take(self) -> list[dict]:
        with self._lock:
            out, self.today = self.today, []
        return out


class DayLoop:
    def __init__(self, runtime, recorder_counts, out_dir: Path, *, base: str):
        from npc_runtime.agent.distill import DistillConfig

        self.runtime = runtime
        self.counts = recorder_counts          # callable -> the recorder's running counts
        self.out_dir = out_dir
        self.base = base                       # the package the next day's student starts from
        self.records = DayRecords(runtime.records)
        runtime.records = self.records
        self.config = DistillConfig()
        self.days: list[dict] = []
        # every day's student trains on ALL the escalations so far (a replay buffer), from the previous day's
        # weights: trained on one day's records only, a student forgets the earlier days' hard cases and the
        # escalation rate seesaws (bench_distill measured 14.5, 2.5, 10.8, 5.0, 11.0 % vs 14.5, 2.5, 5.2, 4.3,
        # 3.5 % with replay). The held-out split is by a hash of each record, so a record held out once is
        # held out from every later student too: day N's held-out agreement is over N days of unseen records.
        self.seen: list[dict] = []
        self._last = {"decisions": 0, "interactions": 0}

    def end_of_day(self, day: int) -> dict:
        """Called between two days (the village paused): measure the day, distill, swap. Returns the day's row."""
        rows = self.records.take()
        counts = dict(self.counts())
        decisions = counts.get("decisions", 0) - self._last["decisions"]
        interactions = counts.get("interactions", 0) - self._last["interactions"]
        self._last = {"decisions": counts.get("decisions", 0), "interactions": counts.get("interactions", 0)}
        attempted = [r for r in rows if r.get("outcome") in ATTEMPTED]
        taught = [r for r in rows if r.get("outcome") == "ok" and r.get("teacher_action")]
        agree = sum(1 for r in taught if r.get("local_action") == r.get("teacher_action"))
        by_trigger = _count(r.get("trigger", "?") for r in attempted)
        policy_driven = sum(by_trigger.get(t, 0) for t in POLICY_TRIGGERS)
        entry = {
            "day": day, "decisions": decisions, "interactions": interactions, "escalations": len(attempted),
            "escalation_rate": _rate(len(attempted), interactions),
            # the share distillation can change: the policy was unsure (see POLICY_TRIGGERS)
            "policy_escalations": policy_driven, "policy_escalation_rate": _rate(policy_driven, interactions),
            "escalation_rate_by_trigger": {t: _rate(n, interactions) for t, n in by_trigger.items()},
            "agreement_with_teacher": round(agree / len(taught), 4) if taught else None,
            "forbidden_actions": sum(1 for r in rows if r.get("executed") not in (r.get("allowed") or ())),
            "cost_usd": round(sum(float(r.get("cost_usd") or 0.0) for r in rows), 6),
            "policy_version": self.runtime.policies.default.name,
            "by_trigger": by_trigger,
        }
        self.seen.extend(rows)
        entry["distilled"] = self._distill(day, self.seen)
        self.days.append(entry)
        d = entry["distilled"]
        print(f"npcrt demo: day {day}: {entry['escalations']} escalations / {interactions} interactions "
              f"({entry['escalation_rate'] * 100:.0f} %; policy-driven {entry['policy_escalation_rate'] * 100:.0f} %, "
              + ", ".join(f"{t} {n}" for t, n in by_trigger.items()) + f"), policy {entry['policy_version']}; "
              + (f"distilled {d['version']} in {d['seconds']:.1f} s (held-out agreement "
                 f"{_pct(d['agreement_with_teacher'])}, base accuracy {_pct(d['base_heldout_accuracy'])})"
                 if d.get("version") else f"kept the policy ({d.get('note')})"), file=sys.stderr, flush=True)
        return entry

    def _distill(self, day: int, rows: list[dict]) -> dict:
        from npc_runtime.agent.distill import distill_records
        from npc_runtime.agent.policy_model import OnnxPolicyModel
        from npc_runtime.agent.versions import PolicyVersion
        from npc_runtime.errors import NpcRuntimeError

        out = self.out_dir / f"day-{day}"
        try:
            result = distill_records(rows, self.base, out, version=f"day-{day}", config=self.config, force=True,
                                     progress=False)
            version = PolicyVersion(result.version, OnnxPolicyModel(out), str(out), result.manifest.get("lineage", {}))
        except NpcRuntimeError as exc:
            return {"note": str(exc)[:300]}
        self.runtime.policies.add(version, make_default=True, keep=4)
        self.base = str(out)
        s = result.report["student"]
        return {"version": result.version, "seconds": result.seconds, "records": result.report["accepted"],
                "heldout_escalations": result.report["heldout_escalations"],
                "agreement_with_teacher_before": result.report["base"]["agreement_with_teacher"],
                "agreement_with_teacher": s["agreement_with_teacher"],
                "base_heldout_accuracy": s["base_heldout_accuracy_clean_rule"],
                "base_model_accuracy": result.report["base"]["base_heldout_accuracy_clean_rule"],
                "ece": s["base_heldout_ece"], "gate": result.report["gate"]}


def _count(items) -> dict:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def _rate(n: int, of: int) -> float:
    return round(n / of, 4) if of else 0.0


def _pct(v) -> str:
    return "n/a" if v is None else f"{v * 100:.1f} %"


def plot_days(days: list[dict], path: Path) -> None:
    """Escalation rate and teacher cost per day (one PNG, two panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [d["day"] for d in days]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(x, [d["escalation_rate"] * 100 for d in days], marker="o", label="all triggers")
    a.plot(x, [d.get("policy_escalation_rate", 0.0) * 100 for d in days], marker="s",
           label="policy-driven (low confidence / margin)")
    a.set(title="escalation rate", xlabel="day", ylabel="% of interactions escalated", ylim=(0, None))
    a.legend(fontsize=8)
    b.bar(x, [d["cost_usd"] for d in days])
    b.set(title=f"teacher cost (priced as {TEACHER_PRICED_AS} offline)", xlabel="day", ylabel="USD")
    for ax in (a, b):
        ax.set_xticks(x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def started_note(days: int, seconds: float) -> str:
    return (f"npcrt demo: {days} day(s) of {seconds:g} game s; after each day the policy is distilled from the "
            f"escalations so far and swapped in ({time.strftime('%H:%M:%S')})")
