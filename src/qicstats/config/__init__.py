"""The analysis config: schema, loading, dumping, hashing and ``qicstats init``.

::

    cfg = load_config("analysis.yaml")     # AnalysisConfig, or one ConfigError with every problem
    cfg.paths.panel                        # absolute paths of the data files
    spec = model_spec(cfg)                 # qicstats.models.ModelSpec
    config_hash(cfg)                       # sha256 of the canonical JSON (config only)
    dump_config(cfg)                       # the resolved config as YAML

See :mod:`qicstats.config.load` for what the hash covers (data are hashed separately).
"""

from __future__ import annotations

from qicstats.config.init import InitResult, propose_config, render_config, write_init_config
from qicstats.config.load import (
    canonical_json,
    config_dict,
    config_hash,
    data_file_hashes,
    dump_config,
    load_config,
    model_spec,
)
from qicstats.config.schema import (
    AnalysisConfig,
    CodesSource,
    DataSection,
    DiagnosticsSection,
    EstimandsSection,
    IndicatorsSection,
    ModelSection,
    ReportSection,
    ResolvedPaths,
    SamplerSection,
)

__all__ = [
    "AnalysisConfig",
    "CodesSource",
    "DataSection",
    "DiagnosticsSection",
    "EstimandsSection",
    "IndicatorsSection",
    "InitResult",
    "ModelSection",
    "ReportSection",
    "ResolvedPaths",
    "SamplerSection",
    "canonical_json",
    "config_dict",
    "config_hash",
    "data_file_hashes",
    "dump_config",
    "load_config",
    "model_spec",
    "propose_config",
    "render_config",
    "write_init_config",
]
