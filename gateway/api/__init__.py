"""HTTP routes and their dependencies. Routes only translate HTTP to calls; no logic lives here."""

from gateway.api.errors import install_error_handlers
from gateway.api.routes import router

__all__ = ["install_error_handlers", "router"]
