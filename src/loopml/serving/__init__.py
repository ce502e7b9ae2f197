"""Serving: deployments with routes, routing, the prediction log, feedback and the server.

``create_app`` builds the FastAPI inference app that ``loopml serve`` runs
(micro-batching per route, hot swap on new revisions and alias moves, ``/metrics``);
``ServerOptions`` and ``BatchPolicy`` tune it. ``compare_routes`` compares routes on
live traffic joined with feedback; ``score_file`` scores a file in chunks;
``predictions("credit")`` reads what an endpoint answered, joined with its feedback;
``prediction_rows("credit")`` reads it as Arrow, one typed row per predicted row.
"""

from __future__ import annotations

from loopml.serving._batching import BatchPolicy
from loopml.serving._compare import (
    COMPARABLE_METRICS,
    Estimate,
    RouteComparison,
    RouteDifference,
    RouteStats,
    Verdict,
    compare_predictions,
    compare_routes,
)
from loopml.serving._deployments import Deployment, DeploymentClient
from loopml.serving._feedback import (
    Feedback,
    LabelChange,
    feedback,
    feedback_history,
    record_feedback,
)
from loopml.serving._prediction_rows import PredictionRows, prediction_rows, read_prediction_rows
from loopml.serving._predlog import SEGMENT_SCHEMA, PredictionLog, PredictionRecord
from loopml.serving._reading import predictions
from loopml.serving._routes import (
    DeploymentSettings,
    DeploymentSpec,
    Route,
    RouteMode,
    parse_route,
)
from loopml.serving._routing import Router, key_position
from loopml.serving._scoring import DEFAULT_CHUNK_ROWS, ScoringResult, score_file
from loopml.serving._server import ServerOptions, create_app

__all__ = [
    "COMPARABLE_METRICS",
    "DEFAULT_CHUNK_ROWS",
    "SEGMENT_SCHEMA",
    "BatchPolicy",
    "Deployment",
    "DeploymentClient",
    "DeploymentSettings",
    "DeploymentSpec",
    "Estimate",
    "Feedback",
    "LabelChange",
    "PredictionLog",
    "PredictionRecord",
    "PredictionRows",
    "Route",
    "RouteComparison",
    "RouteDifference",
    "RouteMode",
    "RouteStats",
    "Router",
    "ScoringResult",
    "ServerOptions",
    "Verdict",
    "compare_predictions",
    "compare_routes",
    "create_app",
    "feedback",
    "feedback_history",
    "key_position",
    "parse_route",
    "prediction_rows",
    "predictions",
    "read_prediction_rows",
    "record_feedback",
    "score_file",
]
