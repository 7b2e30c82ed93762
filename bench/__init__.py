"""The wharf benchmark: wharf and Debian's docker-registry side by side; see bench/README.md."""
