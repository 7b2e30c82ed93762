"""Storage: the layout of a registry's data (``paths``) over pluggable drivers (``driver``)."""
