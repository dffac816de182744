"""Channel adapters: the only code that knows how a message leaves the service."""
