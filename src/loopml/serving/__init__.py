"""Serving: deployments and routes, the prediction log and feedback (the HTTP server comes next)."""
