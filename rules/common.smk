# Shared by every rules file: config validation (before any job runs) and target lists.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir)))

from codyn import config as codyn_config  # noqa: E402
from codyn import paths as codyn_paths  # noqa: E402
from codyn.errors import ConfigError  # noqa: E402

try:
    # Snakemake's own YAML reading keeps the last of a key given twice; ours refuses it.
    for configfile_path in workflow.configfiles:
        codyn_config.read_yaml(configfile_path)
    # Before validation: the name becomes folder names, and an overlay config that does
    # not name its experiment must not write into the embedded default's folders.
    config["experiment"] = codyn_paths.experiment_from_configfiles(
        config, workflow.overwrite_configfiles
    )
    codyn_config.validate_config(config)
except (ConfigError, ValueError) as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
# validate_config checked the config against codyn/schemas/config.schema.yaml and filled its
# defaults: once, in one place (Snakemake's validate would fill them a second time).

# Every output path of this experiment (codyn/paths.py): results/<experiment>/..., etc.
P = codyn_paths.layout(config["experiment"])
RUN_DATASETS = list(config["run_datasets"])
PORTFOLIO = list(config["portfolio"])
TRAIN_DATASETS = codyn_config.train_datasets(config)
SETTINGS = list(config["cost_settings"])
RUN_ROUTERS = list(config["run_routers"])
