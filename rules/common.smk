# Shared by every rules file: config validation (before any job runs) and target lists.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir)))

from codyn import config as codyn_config  # noqa: E402
from codyn.errors import ConfigError  # noqa: E402

try:
    # Snakemake's own YAML reading keeps the last of a key given twice; ours refuses it.
    for configfile_path in workflow.configfiles:
        codyn_config.read_yaml(configfile_path)
    codyn_config.validate_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
validate(config, str(codyn_config.schema_path()))

RUN_DATASETS = list(config["run_datasets"])
PORTFOLIO = list(config["portfolio"])
TRAIN_DATASETS = codyn_config.train_datasets(config)
SETTINGS = list(config["cost_settings"])
RUN_ROUTERS = list(config["run_routers"])
