"""A registry client: any registry speaking the Docker Registry HTTP API V2 / OCI Distribution."""
