"""The one exception of the package contract.

`PackageError.rule` is the class of the problem (the manifest vectors in clients_test/vectors name it, and
the C# and C++ readers report the same classes); `PackageError.field` is the manifest field it is about
(dotted path, `[i]` for list items; "" for the manifest as a whole). `str(exc)` is one line that says what
to fix. The runtime and the exporter translate it into their own error trees at their boundary (`from`).
"""

from __future__ import annotations

# rule -> what it means. Manifest rules (checked without touching any other file) first.
RULES = {
    "json": "manifest.json is missing, unreadable, too large, not JSON or not a JSON object",
    "version": "format_version is not one this reader supports",
    "missing": "a required field is absent",
    "type": "a field has the wrong JSON type",
    "value": "a field's value is out of its range, not one of its allowed values or badly formed",
    "path": "a file name is not a safe relative path inside the package",
    "listing": "a file the package needs (model.onnx, tokenizer.json, policy.json, external data...) is not "
               "listed in `files`",
    "io": "the input / output names lack what the kind needs",
    # package rules: they read the package's files
    "file": "a listed file is missing, not a regular file, or leaves the package through a symlink",
    "hash": "a file's sha256 differs from the manifest",
    "graph": "an ONNX graph cannot be parsed or disagrees with the manifest / its profile",
}
MANIFEST_RULES = ("json", "version", "missing", "type", "value", "path", "listing", "io")


class PackageError(ValueError):
    """A model package (or its manifest) breaks the contract (docs/package.md)."""

    def __init__(self, message: str, *, rule: str, field: str = "", package: str | None = None):
        if rule not in RULES:
            raise ValueError(f"unknown package rule {rule!r}")  # programming error, not input
        self.rule = rule
        self.field = field
        self.package = package
        self.detail = message
        where = f"{package}: " if package else ""
        super().__init__(f"{where}{message}")

    @property
    def is_manifest_problem(self) -> bool:
        """True when the manifest itself is malformed (CLI exit code 2), False when files disagree with it."""
        return self.rule in MANIFEST_RULES

    def at(self, package: str) -> "PackageError":
        """The same error, its message prefixed with the package directory."""
        err = PackageError(self.detail, rule=self.rule, field=self.field, package=package)
        err.__cause__ = self.__cause__
        return err
