"""Training and evaluation of the fusion on frozen backbone features (giva data)."""
