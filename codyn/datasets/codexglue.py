"""CodeXGLUE Java code refinement (small) and Java-to-C# translation.

Both are parallel text files, one method per line: line i of the source file pairs with
line i of the target file. ``split`` is ``test``, ``valid`` or both joined by ``+``
(``test+valid``); task ids are ``{split}-{line}`` (1-based line numbers).

- refinement: prompt = A.8.4 Code Refinement over the buggy (abstracted) method,
  reference = the fixed method, language java, kind refine.
- translation: prompt = A.8.4 Code Translation over the Java method, reference = the
  C# line, language csharp, kind translate.
"""

from __future__ import annotations

from codyn.errors import ConfigError, InputError
from codyn.prompts import TEMPLATE_NAMES, refinement_prompt, translation_prompt

from .base import PrepareContext, Prepared, RemoteFile, read_text_lines, task

SOURCES = ("url", "mirror", "file")
MIRROR_FOLDER = {
    "refinement": "codexglue_code_refinement_small",
    "translation": "codexglue_code2code_trans_java_cs",
}
COMMIT = "ac74a62802a0dd159b3258c78a2df8ad36cdf2b9"
BASE_URL = f"https://raw.githubusercontent.com/microsoft/CodeXGLUE/{COMMIT}/Code-Code"
SPLITS = ("test", "valid")

# (adapter) -> (upstream folder, file pattern, source suffix, target suffix)
LAYOUT = {
    "refinement": ("code-refinement/data/small", "{split}.buggy-fixed.{side}", "buggy", "fixed"),
    "translation": ("code-to-code-trans/data", "{split}.java-cs.txt.{side}", "java", "cs"),
}

SHA256 = {
    "test.buggy-fixed.buggy": "d2e675094f471b3bfbb9419eb7cf14dca11f8d41185319d3310cbc3f517df323",
    "test.buggy-fixed.fixed": "e7ec462d00d253ddec3d1cef7a06cfc99db1cfe94039a6607ed14afeef6be04a",
    "valid.buggy-fixed.buggy": "e83a0c524cdce5a4492dfe0c9bc7d642aa5ed267ddbae5ffd1e563fe54cae6b8",
    "valid.buggy-fixed.fixed": "dc9c23594350988dcdaf456a1e8eea1dc86c81d1c0ff9985ff6d63d15196ffd2",
    "test.java-cs.txt.cs": "7a863a53cba15473d44ef2f7c99096370a204d4c1a54cc3d81c59d4a305756af",
    "test.java-cs.txt.java": "8e4c9db2467622c119366a89aa0ca798b5f72c11433e3ac3080df21e0e4e06f6",
    "valid.java-cs.txt.cs": "513c430d61901a90895b22fb235c532dbdc26b84db9d825e1d04a5856a97aec1",
    "valid.java-cs.txt.java": "5cf92447fd81e126c7d791527f71d16dbcb91d3aa4aafda5c7d9d5c30d75a204",
}


def splits(cfg: dict) -> list[str]:
    out = [s.strip() for s in str(cfg.get("split", "test")).split("+")]
    for s in out:
        if s not in SPLITS:
            raise ConfigError("split", f"{s!r} is not a CodeXGLUE split", allowed=SPLITS)
    return out


def file_names(adapter: str, split: str) -> tuple[str, str]:
    _, pattern, src, tgt = LAYOUT[adapter]
    return pattern.format(split=split, side=src), pattern.format(split=split, side=tgt)


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    folder = LAYOUT[adapter][0]
    out = []
    for split in splits(cfg):
        for name in file_names(adapter, split):
            out.append(RemoteFile(name, f"{BASE_URL}/{folder}/{name}", SHA256[name], name))
    return out


def _find(ctx: PrepareContext, name: str):
    for path in ctx.files():
        if path.name == name:
            return path
    raise InputError(
        f"no file {name} among the fetched files", path=ctx.raw_dir / "MANIFEST.json", field="files"
    )


def prepare(ctx: PrepareContext) -> Prepared:
    kind = "refine" if ctx.adapter == "refinement" else "translate"
    tasks, dropped, n = [], [], 0
    for split in splits(ctx.cfg):
        src_name, tgt_name = file_names(ctx.adapter, split)
        src_path, tgt_path = _find(ctx, src_name), _find(ctx, tgt_name)
        src_lines, tgt_lines = read_text_lines(src_path), read_text_lines(tgt_path)
        if len(src_lines) != len(tgt_lines):
            raise InputError(
                f"{len(src_lines)} lines, but its parallel file {tgt_path} has {len(tgt_lines)}",
                path=src_path,
                record=f"line {min(len(src_lines), len(tgt_lines)) + 1}",
            )
        for lineno, (src, tgt) in enumerate(zip(src_lines, tgt_lines, strict=True), start=1):
            n += 1
            rid = f"{split}-{lineno}"
            if not src.strip() or not tgt.strip():
                dropped.append((rid, "empty source or target line"))
                continue
            if kind == "refine":
                prompt, language = refinement_prompt(src.strip()), "java"
                template = TEMPLATE_NAMES["refinement"]
            else:
                prompt, language = translation_prompt(src.strip()), "csharp"
                template = TEMPLATE_NAMES["translation"]
            tasks.append(
                task(
                    id=rid,
                    dataset=ctx.name,
                    kind=kind,
                    language=language,
                    prompt=prompt,
                    reference=tgt.strip(),
                    meta={
                        "split": split,
                        "line": lineno,
                        "source": src.strip(),
                        "template": template,
                    },
                )
            )
    return Prepared(tasks, n, dropped)
