"""The reference's ``ltx_pipelines.utils.model_ledger``; it lives in :mod:`ltx_pipelines.engine.model_ledger`."""

from ltx_pipelines.engine.model_ledger import MemoryPolicy, ModelLedger, cleanup_memory

__all__ = ["MemoryPolicy", "ModelLedger", "cleanup_memory"]
