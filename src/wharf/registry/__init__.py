"""Registry services."""
