"""dsocr-trace: what DeepSeek-OCR costs, op by op, from a meta-device trace."""

__version__ = "0.1.0"
