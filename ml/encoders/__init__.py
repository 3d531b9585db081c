"""Backbones: pixels or text -> pooled raw features."""
