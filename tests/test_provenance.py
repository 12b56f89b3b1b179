"""codyn provenance on a small real Snakemake workflow (real runs, real metadata).

The workflow mirrors the pipeline's shape: raw -> tasks -> per-model scores ->
table, one folder output (like a router checkpoint) and one shell rule that does
not write a sidecar. Its scripts use codyn.job.job exactly as scripts/ do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codyn import provenance
from codyn.io import sha256_file

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

SNAKEFILE = """
MODELS = {"m-small": {"backend": "simulated", "cost": 1}, "m-big": {"backend": "simulated", "cost": 72}}

rule all:
    input:
        "results/tables/table2.csv",
        "results/routers/r1/setting2",
        "results/notes/copy.txt",

rule prepare:
    input: "data/raw/toy/tasks.txt"
    output: "data/tasks/toy.jsonl"
    params: dataset={"adapter": "toy", "n": 3}
    log: "logs/prepare/toy.log"
    script: "scripts/prepare.py"

rule score:
    input: "data/tasks/toy.jsonl"
    output: "results/scores/toy/{model}.csv"
    params: model=lambda wc: MODELS[wc.model]
    log: "logs/score/{model}.log"
    script: "scripts/score.py"

rule table:
    input: expand("results/scores/toy/{model}.csv", model=sorted(MODELS))
    output: "results/tables/table2.csv"
    params: cost_weight=0.25
    log: "logs/table/table2.log"
    script: "scripts/table.py"

rule train:
    input: "results/tables/table2.csv"
    output: directory("results/routers/{router}/{setting}")
    params: router={"type": "knn", "k": 3}, lambda2=0.25
    log: "logs/train/{router}-{setting}.log"
    script: "scripts/train.py"

rule note:
    input: "results/tables/table2.csv"
    output: "results/notes/copy.txt"
    shell: "cp {input} {output}"
"""

SCRIPTS = {
    "prepare.py": """
        from codyn.io import write_jsonl
        from codyn.job import job

        with job(snakemake) as log:
            lines = open(snakemake.input[0]).read().split()
            write_jsonl(snakemake.output[0], [{"id": t} for t in lines])
            log.info("wrote %d tasks", len(lines))
    """,
    "score.py": """
        from codyn.io import read_jsonl, write_text
        from codyn.job import job

        with job(snakemake):
            tasks = list(read_jsonl(snakemake.input[0]))
            cost = snakemake.params.model["cost"]
            rows = [f"{t['id']},{(i + cost) % 2}" for i, t in enumerate(tasks)]
            write_text(snakemake.output[0], "task_id,score\\n" + "\\n".join(rows) + "\\n")
    """,
    "table.py": """
        from codyn.io import write_text
        from codyn.job import job

        with job(snakemake):
            total = sum(len(open(p).read().splitlines()) for p in snakemake.input)
            write_text(snakemake.output[0], f"rows,weight\\n{total},{snakemake.params.cost_weight}\\n")
    """,
    "train.py": """
        import os
        from codyn.io import write_json
        from codyn.job import job

        with job(snakemake):
            os.makedirs(snakemake.output[0], exist_ok=True)
            write_json(os.path.join(snakemake.output[0], "router.json"), {"k": snakemake.params.router["k"]})
    """,
}


def make_workflow(folder: Path) -> Path:
    (folder / "scripts").mkdir(parents=True)
    (folder / "Snakefile").write_text(SNAKEFILE)
    for name, body in SCRIPTS.items():
        (folder / "scripts" / name).write_text(textwrap.dedent(body))
    (folder / "data" / "raw" / "toy").mkdir(parents=True)
    (folder / "data" / "raw" / "toy" / "tasks.txt").write_text("t1 t2 t3\n")
    return folder


def run_snakemake(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run(
        [
            SNAKEMAKE,
            "--cores",
            "1",
            "--directory",
            str(folder),
            "-s",
            str(folder / "Snakefile"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    folder = make_workflow(tmp_path_factory.mktemp("prov") / "wf")
    done = run_snakemake(folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture
def workflow_copy(workflow, tmp_path) -> Path:
    copy = tmp_path / "wf"
    shutil.copytree(workflow, copy, symlinks=True)
    return copy


def test_chain_of_table_goes_back_to_raw_data(workflow):
    chain = provenance.trace("results/tables/table2.csv", workflow)
    assert chain["status"] == "complete", chain["problems"]
    assert chain["problems"] == []
    rules = [job["rule"] for job in chain["jobs"]]
    assert rules[0] == "table"
    assert sorted(rules) == ["prepare", "score", "score", "table"]
    assert [s["path"] for s in chain["sources"]] == ["data/raw/toy/tasks.txt"]
    assert chain["target"]["status"] == provenance.STATUS_OK
    assert chain["target"]["current_sha256"] == sha256_file(workflow / "results/tables/table2.csv")

    table, *rest = chain["jobs"]
    assert table["params"] == {"cost_weight": 0.25}
    assert table["key_facts"] == {"cost_weight": 0.25}
    assert {i["path"] for i in table["inputs"]} == {
        "results/scores/toy/m-big.csv",
        "results/scores/toy/m-small.csv",
    }
    for item in table["inputs"]:
        assert item["status"] == provenance.STATUS_OK
        assert item["sha256"] == sha256_file(workflow / item["path"])
        assert chain["jobs"][item["from_job"]]["rule"] == "score"
    assert table["script"]["path"] == "scripts/table.py"
    assert table["script"]["sha256"] == sha256_file(workflow / "scripts/table.py")
    assert table["packages"]["snakemake"] == "9.27.1"
    assert "python" in table["packages"]
    assert set(table["code"]) == {"commit", "dirty"}
    assert table["started"] <= table["ended"]
    assert table["snakemake"]["rule"] == "table"
    assert set(table["snakemake"]["input"]) == {i["path"] for i in table["inputs"]}

    big = next(j for j in rest if j["wildcards"] == {"model": "m-big"})
    assert big["params"] == {"model": {"backend": "simulated", "cost": 72}}
    assert big["key_facts"] == {"backend": "simulated", "cost": 72}
    prepare = next(j for j in rest if j["rule"] == "prepare")
    assert prepare["inputs"][0]["path"] == "data/raw/toy/tasks.txt"
    assert prepare["inputs"][0]["from_job"] is None


def test_cli_text_and_json(workflow, capsys):
    cwd = os.getcwd()
    os.chdir(workflow)
    try:
        assert provenance.main(["results/tables/table2.csv"]) == 0
        text = capsys.readouterr().out
        assert provenance.main(["results/tables/table2.csv", "--json"]) == 0
        as_json = json.loads(capsys.readouterr().out)
    finally:
        os.chdir(cwd)
    assert "rule table" in text and "rule prepare" in text
    assert 'backend="simulated"' in text and "cost=72" in text
    assert "data/raw/toy/tasks.txt" in text
    assert as_json["status"] == "complete"
    assert len(as_json["jobs"]) == 4


def test_codyn_command_is_registered(workflow):
    done = subprocess.run(
        [sys.executable, "-m", "codyn.cli", "provenance", "results/scores/toy/m-small.csv"],
        cwd=workflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "rule score  (model=m-small)" in done.stdout


def test_hand_edited_intermediate_is_reported(workflow_copy):
    edited = workflow_copy / "results/scores/toy/m-small.csv"
    edited.write_text(edited.read_text() + "t9,1\n")
    chain = provenance.trace("results/tables/table2.csv", workflow_copy)
    assert chain["status"] == "incomplete"
    score = next(j for j in chain["jobs"] if j["wildcards"] == {"model": "m-small"})
    assert score["outputs"][0]["status"] == provenance.STATUS_MODIFIED
    table = chain["jobs"][0]
    states = {i["path"]: i["status"] for i in table["inputs"]}
    assert states["results/scores/toy/m-small.csv"] == provenance.STATUS_MODIFIED
    assert states["results/scores/toy/m-big.csv"] == provenance.STATUS_OK
    assert any("modified after it was produced" in p for p in chain["problems"])
    assert provenance.main(["--root", str(workflow_copy), "results/tables/table2.csv"]) == 1


def test_hand_edited_target_and_raw_data(workflow_copy, capsys):
    (workflow_copy / "results/tables/table2.csv").write_text("rows,weight\n999,0.25\n")
    (workflow_copy / "data/raw/toy/tasks.txt").write_text("t1 t2 t3 t4\n")
    chain = provenance.trace("results/tables/table2.csv", workflow_copy)
    assert chain["target"]["status"] == provenance.STATUS_MODIFIED
    prepare = next(j for j in chain["jobs"] if j["rule"] == "prepare")
    assert prepare["inputs"][0]["status"] == provenance.STATUS_MODIFIED
    assert provenance.main(["--root", str(workflow_copy), "results/tables/table2.csv"]) == 1
    assert "[modified after it was produced]" in capsys.readouterr().out


def test_file_inside_a_folder_output(workflow):
    chain = provenance.trace("results/routers/r1/setting2/router.json", workflow)
    assert chain["status"] == "complete", chain["problems"]
    train = chain["jobs"][0]
    assert train["rule"] == "train"
    assert train["wildcards"] == {"router": "r1", "setting": "setting2"}
    assert train["key_facts"] == {"lambda2": 0.25}
    assert train["outputs"][0]["path"] == "results/routers/r1/setting2"
    assert train["outputs"][0]["sha256"] is not None
    assert [j["rule"] for j in chain["jobs"]][:2] == ["train", "table"]


def test_folder_output_edit_is_detected(workflow_copy):
    (workflow_copy / "results/routers/r1/setting2/extra.bin").write_bytes(b"x")
    chain = provenance.trace("results/routers/r1/setting2", workflow_copy)
    assert chain["target"]["status"] == provenance.STATUS_MODIFIED


def test_rule_without_sidecar_falls_back_to_snakemake_metadata(workflow):
    chain = provenance.trace("results/notes/copy.txt", workflow)
    note = chain["jobs"][0]
    assert note["rule"] == "note"
    assert note["sidecar"] is None
    assert note["inputs"][0]["path"] == "results/tables/table2.csv"
    # Snakemake's input checksum is its own (sha256) and still matches.
    assert note["inputs"][0]["status"] == provenance.STATUS_OK
    assert chain["jobs"][1]["rule"] == "table"
    assert chain["status"] == "incomplete"
    assert any("no codyn sidecar" in p for p in chain["problems"])


def test_file_outside_the_pipeline(workflow, tmp_path):
    chain = provenance.trace("data/raw/toy/tasks.txt", workflow)
    assert chain["jobs"] == []
    assert chain["status"] == "incomplete"
    assert provenance.main(["--root", str(workflow), "no/such/file.csv"]) == 2


def test_rerun_rewrites_the_sidecar(workflow_copy):
    before = json.loads((workflow_copy / "provenance/results/tables/table2.csv.json").read_text())
    done = run_snakemake(workflow_copy, "--forcerun", "table", "results/tables/table2.csv")
    assert done.returncode == 0, done.stderr[-2000:]
    after = json.loads((workflow_copy / "provenance/results/tables/table2.csv.json").read_text())
    assert after["started"] > before["started"]
    assert provenance.trace("results/tables/table2.csv", workflow_copy)["status"] == "complete"


def test_key_facts_found_anywhere_in_params():
    params = {
        "model": {"backend": "bedrock", "model_id": "meta.llama3-1-8b", "cost": 1.0},
        "setting": "setting2",
    }
    assert provenance.key_facts(params) == {
        "backend": "bedrock",
        "model_id": "meta.llama3-1-8b",
        "cost": 1.0,
        "setting": "setting2",
    }


def test_raw_files_of_a_fetch_manifest_are_checked(tmp_path):
    raw = tmp_path / "data/raw/ds"
    raw.mkdir(parents=True)
    (raw / "a.jsonl").write_text("a\n")
    (raw / "b.jsonl").write_text("b\n")
    files = [
        {"path": name, "sha256": sha256_file(raw / name), "origin": f"https://example.org/{name}"}
        for name in ("a.jsonl", "b.jsonl")
    ] + [{"path": "gone.jsonl", "sha256": "0" * 64}]
    (raw / "MANIFEST.json").write_text(json.dumps({"files": files}))
    (raw / "b.jsonl").write_text("edited\n")
    states = {r["path"]: r for r in provenance.raw_files("data/raw/ds/MANIFEST.json", tmp_path)}
    assert states["data/raw/ds/a.jsonl"]["status"] == provenance.STATUS_OK
    assert states["data/raw/ds/a.jsonl"]["origin"] == "https://example.org/a.jsonl"
    assert states["data/raw/ds/b.jsonl"]["status"] == provenance.STATUS_MODIFIED
    assert states["data/raw/ds/gone.jsonl"]["status"] == provenance.STATUS_MISSING


def test_git_state_names_the_commit_and_a_dirty_tree(tmp_path):
    from codyn.job import git_state

    assert git_state(tmp_path) == {"commit": None, "dirty": None}  # not a checkout

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "Snakefile").write_text("rule all:\n    input: []\n")
    git("add", "Snakefile")
    git("commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "Snakefile").write_text("# edited\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}
