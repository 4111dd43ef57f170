"""HTTP routers; each module one concern."""
