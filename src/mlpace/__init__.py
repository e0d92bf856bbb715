"""mlpace: MLPerf-style training and inference benchmarks, mini and reference scale."""

__version__ = "0.1.0"
