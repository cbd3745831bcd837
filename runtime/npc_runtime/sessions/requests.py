"""The engine's request types, one per operation, and the ONE validation of every field they carry.

    OpenRequest      open a session (prompt, or chat messages rendered with the package's template)
    TickRequest      one entry of a frame-sliced tick
    GenerateRequest  a streamed generation: one or more turns of a session (an open one, or one opened for
                     the stream with `open=` and closed when it ends)

gRPC (`serving/translate.py`) and the HTTP API map their wire fields onto these types and check nothing
themselves; the engine validates each request once, with the checks below, so a bad field gives the same
message whichever API carried it, e.g. "sampling.temperature must be a finite number in [0, 5] (got 9.0)".
Size limits that are server policy (longest text, largest budget...) come from `RequestLimits`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec, load_schema
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument, RequestTooLarge

MAX_ID_CHARS = 256
MAX_TEMPERATURE = 5.0
MAX_REPETITION_PENALTY = 3.0
MAX_TOKENS_PER_REQUEST = 1 << 20
MAX_IDLE_TIMEOUT_S = 7 * 24 * 3600
MAX_SEED = 1 << 64
# a turn without its own token limit runs until the session's max_new_tokens (or stop, EOS...) ends it
UNBOUNDED_TOKENS = 1 << 30


@dataclass(frozen=True, kw_only=True)
class RequestLimits:
    """Server policy on request sizes. The defaults bound nothing a direct engine user could mean (tests and
    benchmarks pass budgets of seconds); `npcrt serve` takes its values from the server configuration."""
    max_text_chars: int | None = None       # longest text field (prompt, input, one stop string...); None: no limit
    max_budget_ms: float = math.inf         # largest TickRequest.budget_ms
    default_budget_ms: float = 2.0          # TickRequest.budget_ms None
    max_stop_sequences: int = 16
    max_allowed_sequences: int = 256        # ConstraintSpec.one_of choices
    max_tick_entries: int | None = None     # entries of one tick; None: no limit
    max_messages: int | None = None         # chat messages of one open; None: no limit
    max_prompt_chars: int | None = None     # characters of one open's prompt (all messages, or prefix + prompt)


@dataclass(frozen=True, kw_only=True)
class OpenRequest:
    model: str = ""                                   # "" = the first served model
    npc_id: str = ""
    prompt: str | Sequence[int] = ""                  # text (tokenized with special tokens) or token ids; "" = BOS
    prefix: str = ""                                  # text before the prompt (a persona shared by many NPCs)
    apply_chat_template: bool = False                 # prefix as the system message, prompt as the user's
    messages: Sequence[dict] | None = None            # chat messages [{"role", "content"}] instead of a prompt
    sampling: SamplingParams | None = None            # None: EngineConfig.default_sampling
    limits: SessionLimits | None = None               # None: EngineConfig.default_limits
    constraint: ConstraintSpec | None = None          # of the first turn
    session_id: str | None = None                     # None: a fresh uuid


@dataclass(frozen=True, kw_only=True)
class OpenedSession:
    session_id: str
    model: str
    prompt_tokens: int          # tokens of the first turn (prefix + prompt)
    cached_prefix_tokens: int   # of those, whose KV came from the prefix cache (looked up at open)


@dataclass(slots=True)
class TickRequest:
    session_id: str
    budget_ms: float | None = None    # wall time this tick may spend, shared by all entries; None: the default
    max_tokens: int | None = None     # at most this many new tokens for this session in this tick; None: no limit
    new_input: str | Sequence[int] | None = None   # starts a new turn first
    constraint: ConstraintSpec | None = None       # the new turn's constraint (with new_input only)


@dataclass(frozen=True, kw_only=True)
class Turn:
    input: str | Sequence[int] | None = None   # starts a new turn ([] = a new turn with no new tokens);
                                               # None = the turn in progress (the prompt's, right after open)
    constraint: ConstraintSpec | None = None   # the new turn's constraint (with input only)
    max_tokens: int | None = None              # None: until the turn ends by itself (max_new_tokens, stop, EOS)


@dataclass(frozen=True, kw_only=True)
class GenerateRequest:
    session_id: str = ""                     # a session from open() ...
    open: OpenRequest | None = None          # ... or one opened for this stream and closed when it ends
    turns: tuple[Turn, ...] = (Turn(),)      # generated one after the other in one stream


# ------------------------------------------------------------------------------------------- fields

def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value, field: str, low: float, high: float = math.inf) -> float:
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high:
        span = f">= {low:g}" if math.isinf(high) else f"in [{low:g}, {high:g}]"
        raise InvalidArgument(f"{field} must be a finite number {span} (got {value!r})")
    return float(value)


def integer(value, field: str, low: int, high: int = MAX_TOKENS_PER_REQUEST) -> int:
    if not _is_integer(value) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be an integer in [{low}, {high}] (got {value!r})")
    return value


def text(value, field: str, limits: RequestLimits) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string (got {type(value).__name__})")
    if limits.max_text_chars is not None and len(value) > limits.max_text_chars:
        raise InvalidArgument(f"{field} is {len(value)} characters long; the limit is {limits.max_text_chars}")
    valid_unicode(value, field)
    return value


def valid_unicode(value: str, field: str) -> None:
    """Text the tokenizer can encode: a lone surrogate ("\\ud800" in a JSON body) has no UTF-8 form."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"{field} has an unpaired surrogate {value[exc.start]!r} at character {exc.start}; "
                                  "send valid Unicode text") from exc


def text_or_ids(value, field: str, limits: RequestLimits) -> None:
    """Text, or token ids (their range is the model's, checked when they are encoded)."""
    if isinstance(value, str):
        text(value, field, limits)
    elif not isinstance(value, Sequence) or not all(_is_integer(t) for t in value):
        raise InvalidArgument(f"{field} must be a string or a list of token ids")


def session_id(value, field: str = "session_id") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{field} is empty; pass the id returned by OpenSession")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_CHARS} characters; pass the id returned by OpenSession")
    return value


def _short(value, field: str, hint: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_CHARS} characters; {hint}")
    valid_unicode(value, field)   # echoed in error messages: a lone surrogate would break the response


def check_sampling(p: SamplingParams, limits: RequestLimits, field: str = "sampling") -> None:
    if not isinstance(p, SamplingParams):
        raise InvalidArgument(f"{field} must be SamplingParams")
    number(p.temperature, _join(field, "temperature"), 0.0, MAX_TEMPERATURE)
    integer(p.top_k, _join(field, "top_k"), 0, 1 << 32)
    top_p = number(p.top_p, _join(field, "top_p"), 0.0, 1.0)
    if top_p == 0.0:
        raise InvalidArgument(f"{_join(field, 'top_p')} must be in (0, 1] (got 0.0; 1 disables it)")
    penalty = number(p.repetition_penalty, _join(field, "repetition_penalty"), 0.0, MAX_REPETITION_PENALTY)
    if penalty == 0.0:
        raise InvalidArgument(f"{_join(field, 'repetition_penalty')} must be in (0, {MAX_REPETITION_PENALTY:g}] "
                              "(got 0.0; 1 disables it)")
    if p.seed is not None:
        integer(p.seed, _join(field, "seed"), 0, MAX_SEED - 1)
    stop = _join(field, "stop")
    if not isinstance(p.stop, (tuple, list)) or len(p.stop) > limits.max_stop_sequences:
        raise InvalidArgument(f"{stop} must be a list of at most {limits.max_stop_sequences} strings")
    for i, s in enumerate(p.stop):
        if s == "":
            raise InvalidArgument(f"{stop}[{i}] is empty; remove it or give the text to stop at")
        text(s, f"{stop}[{i}]", limits)
    if not isinstance(p.logprobs, bool):
        raise InvalidArgument(f"{_join(field, 'logprobs')} must be a boolean")


def check_limits(lim: SessionLimits, field: str = "limits") -> None:
    if not isinstance(lim, SessionLimits):
        raise InvalidArgument(f"{field} must be SessionLimits")
    integer(lim.max_new_tokens, _join(field, "max_new_tokens"), 1)
    if lim.max_context is not None:
        integer(lim.max_context, _join(field, "max_context"), 2)
    if lim.idle_timeout_s is not None:
        timeout = number(lim.idle_timeout_s, _join(field, "idle_timeout_s"), 0.0, MAX_IDLE_TIMEOUT_S)
        if timeout == 0.0:
            raise InvalidArgument(f"{_join(field, 'idle_timeout_s')} must be > 0")


def check_constraint(spec: ConstraintSpec, limits: RequestLimits, field: str = "constraint") -> None:
    if not isinstance(spec, ConstraintSpec) or (spec.choices is None) == (spec.json_schema is None):
        raise InvalidArgument(f"{field} must be a ConstraintSpec with exactly one of choices (one_of) or a JSON schema")
    if spec.choices is not None:
        where = f"{field}.allowed.sequences"
        if not spec.choices:
            raise InvalidArgument(f"{where} is empty; list the strings the model may produce")
        if len(spec.choices) > limits.max_allowed_sequences:
            raise InvalidArgument(f"{where} has {len(spec.choices)} entries; at most {limits.max_allowed_sequences}")
        for i, choice in enumerate(spec.choices):
            if choice == "":
                raise InvalidArgument(f"{where}[{i}] is empty")
            text(choice, f"{where}[{i}]", limits)
        return
    load_schema(text(spec.json_schema, f"{field}.json_schema", limits), field=f"{field}.json_schema")


def _new_turn(new_input, constraint, limits: RequestLimits, input_field: str, constraint_field: str) -> None:
    if new_input is not None:
        text_or_ids(new_input, input_field, limits)
    if constraint is not None:
        check_constraint(constraint, limits, constraint_field)
        if new_input is None:
            raise InvalidArgument(f"{constraint_field} needs {input_field} (a constraint applies to a new turn)")


# ----------------------------------------------------------------------------------------- requests

def check_open(r: OpenRequest, limits: RequestLimits, field: str = "") -> None:
    if not isinstance(r, OpenRequest):
        raise InvalidArgument(f"{field or 'open'} must be an OpenRequest")
    _short(r.model, _join(field, "model"), "use a name from ListModels")
    _short(r.npc_id, _join(field, "npc_id"), "use a shorter game-side id")
    text(r.prefix, _join(field, "prefix"), limits)
    text_or_ids(r.prompt, _join(field, "prompt"), limits)
    if r.prefix and not isinstance(r.prompt, str):
        raise InvalidArgument(f"{_join(field, 'prefix')} needs a text prompt (token ids take no prefix)")
    if r.messages is not None:
        if r.prompt or r.prefix or r.apply_chat_template:
            raise InvalidArgument(f"{_join(field, 'messages')}: give messages or a prompt, not both")
        if not r.messages:
            raise InvalidArgument(f"{_join(field, 'messages')} is empty; give at least one message")
        if limits.max_messages is not None and len(r.messages) > limits.max_messages:
            raise RequestTooLarge(f"{_join(field, 'messages')} has {len(r.messages)} messages; the limit is "
                                  f"{limits.max_messages} per request")
        for i, m in enumerate(r.messages):
            where = f"{_join(field, 'messages')}[{i}]"
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidArgument(f"{where} must be {{\"role\": ..., \"content\": ...}}")
            text(m.get("content", ""), f"{where}.content", limits)
    _prompt_size(r, limits, field)
    if r.sampling is not None:
        check_sampling(r.sampling, limits, _join(field, "sampling"))
    if r.limits is not None:
        check_limits(r.limits, _join(field, "limits"))
    if r.constraint is not None:
        check_constraint(r.constraint, limits, _join(field, "constraint"))
    if r.session_id is not None:
        session_id(r.session_id, _join(field, "session_id"))


def prompt_chars(r: OpenRequest) -> int:
    """Characters of an open's prompt text: its messages' contents, or prefix + prompt (0 for token ids)."""
    if r.messages is not None:
        return sum(len(m.get("content") or "") for m in r.messages if isinstance(m, dict))
    return len(r.prefix) + (len(r.prompt) if isinstance(r.prompt, str) else 0)


def _prompt_size(r: OpenRequest, limits: RequestLimits, field: str) -> None:
    if limits.max_prompt_chars is None:
        return
    chars = prompt_chars(r)
    if chars > limits.max_prompt_chars:
        what = "messages" if r.messages is not None else "prefix + prompt"
        raise RequestTooLarge(f"{_join(field, what)}: {chars} characters of prompt text; the limit is "
                              f"{limits.max_prompt_chars} per request")


def check_tick_entry(r: TickRequest, limits: RequestLimits, field: str) -> tuple[float, int]:
    """The entry's budget (ms) and token cap for this tick."""
    if not isinstance(r, TickRequest):
        raise InvalidArgument(f"{field} must be a TickRequest")
    session_id(r.session_id, f"{field}.session_id")
    budget = (limits.default_budget_ms if r.budget_ms is None
              else number(r.budget_ms, f"{field}.budget_ms", 0.0, limits.max_budget_ms))
    cap = UNBOUNDED_TOKENS if r.max_tokens is None else integer(r.max_tokens, f"{field}.max_tokens", 0)
    _new_turn(r.new_input, r.constraint, limits, f"{field}.new_input", f"{field}.constraint")
    return budget, cap


def check_tick_size(n: int, limits: RequestLimits) -> None:
    if limits.max_tick_entries is not None and n > limits.max_tick_entries:
        raise InvalidArgument(f"entries has {n} items; at most {limits.max_tick_entries} per Tick "
                              "(see HandshakeResponse.max_tick_entries)")


def check_turn(t: Turn, limits: RequestLimits, field: str = "") -> None:
    if not isinstance(t, Turn):
        raise InvalidArgument(f"{field or 'turn'} must be a Turn")
    if t.max_tokens is not None:
        integer(t.max_tokens, _join(field, "max_tokens"), 1)
    _new_turn(t.input, t.constraint, limits, _join(field, "input"), _join(field, "constraint"))


def check_generate(r: GenerateRequest, limits: RequestLimits) -> None:
    if not isinstance(r, GenerateRequest):
        raise InvalidArgument("generate takes a GenerateRequest")
    if r.open is not None:
        if r.session_id:
            raise InvalidArgument("give session_id or open, not both")
        check_open(r.open, limits)   # named as OpenSession names them: the same message on every path
    else:
        session_id(r.session_id)
    if not r.turns:
        raise InvalidArgument("turns is empty; give at least one Turn")
    for k, t in enumerate(r.turns):
        # a single turn's fields are named as the wire names them (GenerateRequest.input, .max_tokens)
        check_turn(t, limits, f"turns[{k}]" if len(r.turns) > 1 else "")
    if r.open is not None and r.turns[0].input is not None:
        raise InvalidArgument("the first turn of an opened session is its prompt: leave turns[0].input unset")
