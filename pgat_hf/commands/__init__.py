"""The `pgat-hf` commands: one module per subcommand, each with `main(argv) -> int`."""
