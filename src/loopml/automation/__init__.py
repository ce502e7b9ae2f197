"""Automation: triggers, the scheduler and the continuous-training loop."""
