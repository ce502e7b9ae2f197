"""Automation: triggers, the scheduler, the continuous-training loop and canary analysis."""
