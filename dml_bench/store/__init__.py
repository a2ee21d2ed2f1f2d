"""Run records under ``results/``: written atomically (``write``), read into pandas (``read``)."""
