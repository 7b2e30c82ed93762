"""Port of the OCI distribution-spec conformance suite (``conformance/`` of the spec's repo)."""
