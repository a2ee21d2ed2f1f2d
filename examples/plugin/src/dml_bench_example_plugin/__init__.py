"""An example dml-bench plugin: a loss that dml-bench does not ship (Circle loss).

Nothing is registered here and nothing heavy is imported: dml-bench finds the method through the
``dml_bench.methods`` entry point in ``pyproject.toml`` and imports its module (and with it torch
and pytorch-metric-learning) only when the method is used.
"""
