"""Tokenizer of a package (`tokenizers`), incremental detokenization, chat template (sandboxed jinja2)."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from npc_runtime.decode.package import ModelPackage
from npc_runtime.errors import InvalidArgument, ModelPackageError

_REPLACEMENT = "\ufffd"


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, *, bos: int | None, eos: Sequence[int],
                 chat_template: str | None = None) -> None:
        self._tok = tokenizer
        self.bos = bos
        self.eos = tuple(eos)
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self._template = None
        if chat_template:
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_template_error
            try:
                self._template = env.from_string(chat_template)
            except TemplateError as exc:
                raise ModelPackageError(f"chat_template does not compile: {exc}") from exc
        self._token_strings: list[str] | None = None
        self._max_chars: int | None = None     # max_chars_per_token, computed on first use (0: no bound)

    @classmethod
    def from_package(cls, package: ModelPackage) -> "TextTokenizer":
        try:
            tok = Tokenizer.from_file(str(package.tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ModelPackageError(f"{package.tokenizer_file}: unreadable tokenizer ({exc})") from exc
        st = package.special_tokens
        return cls(tok, bos=st.bos, eos=st.eos, chat_template=package.chat_template)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise InvalidArgument(f"text must be a string, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_strings(self) -> list[str]:
        """The text of each token alone ('' for special tokens, may hold U+FFFD for partial UTF-8)."""
        if self._token_strings is None:
            self._token_strings = [self._tok.decode([i], skip_special_tokens=True) for i in range(self.vocab_size)]
        return self._token_strings

    def max_chars_per_token(self) -> int | None:
        """An upper bound on the characters of input text one token stands for, or None when there is none.
        With it a prompt that cannot fit a context is refused without tokenizing it: tokens >= chars / bound
        (docs/limits.md). Sound for BPE that never drops a character (byte-level, byte fallback, or an
        unfused unknown token): a token covers at most its vocabulary string's length ("Ġthe": one character
        per byte; "<0x41>" is longer than the byte it stands for). A normalizer may compose characters
        (NFC: "e" + U+0301 -> one), so with one the bound doubles. Other models (WordPiece, Unigram; fused
        unknown runs, one [UNK] for any length): None."""
        if self._max_chars is None:
            model = self._tok.model
            keeps_every_char = (getattr(model, "byte_fallback", False) or "ByteLevel" in repr(self._tok.pre_tokenizer)
                                or (getattr(model, "unk_token", None) is not None and not getattr(model, "fuse_unk", True)))
            if type(model).__name__ != "BPE" or not keeps_every_char:
                self._max_chars = 0
            else:
                longest = max((len(t) for t in self._tok.get_vocab(with_added_tokens=True)), default=1)
                self._max_chars = longest * (1 if self._tok.normalizer is None else 2)
        return self._max_chars or None

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def apply_chat_template(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        if self._template is None:
            # no template in the package: plain "role: content" lines
            lines = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages]
            return "\n".join(lines) + ("\nassistant:" if add_generation_prompt else "")
        try:
            return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         bos_token=self._special_text(self.bos),
                                         eos_token=self._special_text(self.eos[0] if self.eos else None))
        except TemplateError as exc:
            raise InvalidArgument(f"chat template failed on these messages: {exc}") from exc

    def _special_text(self, token_id: int | None) -> str:
        return "" if token_id is None else (self._tok.id_to_token(token_id) or "")

    def detokenizer(self) -> "IncrementalDetokenizer":
        return IncrementalDetokenizer(self)


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas that never split a UTF-8 character.

    Decodes a short window `ids[prefix:]` and emits what the newest tokens added, holding text back while it
    ends in U+FFFD (an incomplete byte sequence: the next token may complete it). Cost per token is
    O(window), not O(history). At the end of a turn, `flush` emits the complete characters still held and
    drops an incomplete tail, so a turn's text never ends with a replacement character that the model did
    not mean (bytes of a character cut off by the turn's end are not text).
    """

    def __init__(self, tokenizer: TextTokenizer) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0   # start of the decode window
        self._read = 0     # ids before this index have been emitted

    def push(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        prefix_text = self._tok.decode(self._ids[self._prefix:self._read])
        full_text = self._tok.decode(self._ids[self._prefix:])
        if len(full_text) > len(prefix_text) and not full_text.endswith(_REPLACEMENT):
            delta = full_text[len(prefix_text):]
            self._prefix, self._read = self._read, len(self._ids)
            return delta
        return ""

    def flush(self) -> str:
        """The complete characters held back; an incomplete trailing byte sequence is dropped."""
        prefix_text = self._tok.decode(self._ids[self._prefix:self._read])
        full_text = self._tok.decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        # held text always ends in U+FFFD (else push emitted it): those are the cut-off bytes
        return full_text[len(prefix_text):].rstrip(_REPLACEMENT)
