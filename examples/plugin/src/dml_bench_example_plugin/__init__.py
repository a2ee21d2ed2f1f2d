"""An example dml-bench plugin: two losses that dml-bench does not ship.

Nothing is registered here and nothing heavy is imported: dml-bench finds the methods through the
``dml_bench.methods`` entry points in ``pyproject.toml`` and imports each module (and with it
torch and pytorch-metric-learning) only when its method is used.
"""
