"""Every MLPerf rule mlpace applies, as data, once."""

from mlpace.rules import inference  # noqa: F401 - the MLPerf Inference v1.1 rules (mlpace.rules.inference)
