"""The partner API (DRF, versioned under /api/v1/): search, catalog reads, API keys."""
