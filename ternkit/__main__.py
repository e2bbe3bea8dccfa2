from ternkit.cli import entry

entry()
