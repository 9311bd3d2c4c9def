"""The command-line applications built on the engine: `cli` (the `engine` command),
`bench` (`engine bench`), `experiments` (`engine experiment`) and `tables` (the Markdown
tables they print)."""
