"""SVEN vulnerable/fixed function pairs -> Python vulnerability classification.

Only records whose ``file_name`` ends with ``.py`` are kept (the others are C/C++/JS and
are listed as dropped). Each pair gives two tasks with the A.8.1 SVEN template:
``func_src_before`` (label True = vulnerable, id ``.../vul``) and ``func_src_after``
(label False, id ``.../fixed``). A pair whose before and after are identical carries no
label signal (the same text would be asked for both answers): it is dropped whole, with
that reason. The upstream files have none.

Only the CWE files that hold Python are fetched: cwe-022, cwe-078, cwe-079, cwe-089
(cwe-125/190/416/476/787 are C/C++ only). ``split``: ``train``, ``val`` or ``train+val``;
SVEN has no test split, so the schema default ``test`` means ``train+val`` (all pairs).
"""

from __future__ import annotations

from codyn.errors import ConfigError
from codyn.io import read_jsonl
from codyn.prompts import TEMPLATE_NAMES, sven_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task

SOURCES = ("url", "mirror", "file")
MIRROR_FOLDER = {"sven": "sven"}
COMMIT = "e8449a0d54a5ae0bbdc6bb236330b8c7ec71df57"
SPLITS = ("train", "val")
PYTHON_CWES = ("cwe-022", "cwe-078", "cwe-079", "cwe-089")
SHA256 = {
    "train/cwe-022.jsonl": "273ebfa9847f35a590bbef0623d01c8cf5e60b050a9e9a7244b36cedf2035e17",
    "train/cwe-078.jsonl": "07419b7027f1f287cbd9cb2f545182bf5793122167ec8fd24a33a2ff6264c8e8",
    "train/cwe-079.jsonl": "114195fdbdd0c465d36abcfeb7e74e8d6be81b57aa1d4815d8407b389eb2ec4a",
    "train/cwe-089.jsonl": "b47eb0e24035c3cbb5d38a14d1a757cd783827e3c2ecf067f52d0413d46fb09f",
    "val/cwe-022.jsonl": "bdbe2ba66b09ad1294b5e4ae7a9a6db79df590d535ff61989459bbf00ff908e9",
    "val/cwe-078.jsonl": "4047f5c513a00e0a846e3c8b50d9c4073ad5fe7da4ce6295ae39ac8a0531efe2",
    "val/cwe-079.jsonl": "4f5cbd578451bf83391703739df3de456e83a63f53e93a895a731d14c3c51021",
    "val/cwe-089.jsonl": "5dc8065ac97dd60ef14f93ac2f37d634e876f237529b4355ce53313b47c175ba",
}
FIELDS = ("func_name", "func_src_before", "func_src_after", "file_name", "vul_type")


def splits(cfg: dict) -> list[str]:
    split = str(cfg.get("split") or "test")
    if split == "test":
        split = "train+val"
    out = [s.strip() for s in split.split("+")]
    for s in out:
        if s not in SPLITS:
            raise ConfigError(
                "split", f"{s!r} is not a SVEN split", allowed=("train", "val", "train+val")
            )
    return out


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    base = f"https://raw.githubusercontent.com/eth-sri/sven/{COMMIT}/data_train_val"
    out = []
    for split in splits(cfg):
        for cwe in PYTHON_CWES:
            name = f"{split}/{cwe}.jsonl"
            out.append(RemoteFile(name, f"{base}/{name}", SHA256[name], f"data_train_val/{name}"))
    return out


def pair_tasks(pair_id: str, dataset: str, vulnerable: str, fixed: str, meta) -> list[dict]:
    """The two classify tasks of one pair: ``{pair_id}/vul`` (label True, vulnerable)
    and ``{pair_id}/fixed`` (label False). ``meta`` is a dict, or a function of the label
    giving one."""
    out = []
    for suffix, code, label in (("vul", vulnerable, True), ("fixed", fixed, False)):
        out.append(
            task(
                id=f"{pair_id}/{suffix}",
                dataset=dataset,
                kind="classify",
                language="python",
                prompt=sven_prompt(code),
                reference="Yes" if label else "No",
                label=label,
                meta=meta(label) if callable(meta) else meta,
            )
        )
    return out


def prepare(ctx: PrepareContext) -> Prepared:
    tasks, dropped, n = [], [], 0
    for path in ctx.files():
        if not path.name.endswith(".jsonl"):
            continue
        split, cwe = path.parent.name, path.stem
        for lineno, rec in enumerate(read_jsonl(path), start=1):
            n += 1
            rid = f"{split}/{cwe}/{lineno}"
            for field in FIELDS:
                require(rec, field, str, path=path, record=f"line {lineno}")
            if not rec["file_name"].endswith(".py"):
                dropped.append((rid, "not Python (file_name does not end with .py)"))
                continue
            before, after = rec["func_src_before"], rec["func_src_after"]
            if before == after:
                dropped.append((rid, "func_src_before == func_src_after (no label signal)"))
                continue
            meta = {
                "split": split,
                "cwe": rec["vul_type"],
                "func_name": rec["func_name"],
                "file_name": rec["file_name"],
                "commit_link": rec.get("commit_link"),
                "pair": rid,
                "template": TEMPLATE_NAMES["sven"],
            }
            tasks += pair_tasks(rid, ctx.name, before, after, meta)
    return Prepared(tasks, n, dropped)
