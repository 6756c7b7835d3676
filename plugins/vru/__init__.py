"""VRU monitoring: feeds, loaders, validation and the command line for the serious violence programme."""

__version__ = "0.1.0"
