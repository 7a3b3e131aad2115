"""The doors: the command line and the browser chat, thin layers over :mod:`assistant`."""
