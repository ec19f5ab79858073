"""An OpenAPI 3 description of the backend's routes (served at ``GET /openapi.json``; the fuzz tests use it)."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "Client error naming the problem", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

_PROJECT = {
    "description": "Project id: an integer, '<id>.<timestamp>' as Label Studio sends it, or an object with 'id'.",
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
              {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}, "label_config": {"type": "string"}}, "required": ["id"]}],
}

_TASK = {
    "type": "object",
    "required": ["id", "data"],
    "properties": {
        "id": {"type": "integer"},
        "project": {"type": "integer"},
        "data": {
            "type": "object",
            "required": ["prompt", "response_a", "response_b"],
            "properties": {
                "prompt": {"type": "string"}, "response_a": {"type": "string"}, "response_b": {"type": "string"},
                "ai_label": {"type": "string", "enum": ["a", "b"], "nullable": True},
                "pair_id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            },
        },
    },
}


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document (a dict)."""
    json_body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema}}}  # noqa: E731
    ok = lambda desc: {"description": desc, "content": {"application/json": {"schema": {"type": "object"}}}}  # noqa: E731
    errors = {"400": _ERROR, "401": _ERROR, "404": _ERROR, "413": _ERROR, "422": _ERROR}
    return {
        "openapi": "3.0.3",
        "info": {"title": "rlthf Label Studio ML backend", "version": "1"},
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
                "Task": _TASK,
            },
        },
        "security": [{"basic": []}],
        "paths": {
            "/health": {"get": {"security": [], "responses": {"200": ok("status UP, Label Studio reachability, worker")}}},
            "/setup": {"post": {
                "requestBody": json_body({"type": "object", "required": ["project", "schema"], "properties": {
                    "project": _PROJECT, "schema": {"type": "string", "description": "labeling config XML"},
                    "hostname": {"type": "string"}, "access_token": {"type": "string"}, "extra_params": {}}}),
                "responses": {"200": ok("{model_version}"), **errors}}},
            "/predict": {"post": {
                "requestBody": json_body({"type": "object", "required": ["tasks"], "properties": {
                    "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                    "project": _PROJECT, "label_config": {"type": "string"}, "params": {"type": "object"}}}),
                "responses": {"200": ok("{results: [{result, score, model_version, rlthf: {region, label_source, reward_gap, priority}}], model_version}"), **errors}}},
            "/webhook": {"post": {
                "requestBody": json_body({"type": "object", "required": ["action"], "properties": {
                    "action": {"type": "string", "enum": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
                                                          "START_TRAINING", "TASKS_CREATED", "TASKS_DELETED"]},
                    "project": _PROJECT,
                    "annotation": {"type": "object", "properties": {"id": {"type": "integer"}, "result": {"type": "array"},
                                                                    "was_cancelled": {"type": "boolean"}, "updated_at": {"type": "string"}}},
                    "annotations": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
                    "task": {"type": "object"}}}),
                "responses": {"200": ok("{status: queued | duplicate | ignored}"), **errors}}},
            "/train": {"post": {"requestBody": json_body({"type": "object", "required": ["project"], "properties": {"project": _PROJECT}}),
                                "responses": {"200": ok("{status: queued}"), **errors}}},
            "/versions": {"get": {"parameters": [{"name": "project", "in": "query", "schema": {"type": "string"}}],
                                  "responses": {"200": ok("{versions: [...]}"), **errors}}},
            "/report/{project_id}": {"get": {
                "parameters": [{"name": "project_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": (
                    "HTML page for people, no JavaScript: the reward-gap curve with its regions and the human answers, "
                    "the share of AI mistakes along the curve from the human answers (Wilson intervals per tenth of the "
                    "curve), the live estimates and their warnings, what the mistake model learned (its explanation "
                    "and weights), the budget used and left, the head of the queue with the reason each pair is asked, "
                    "and the TRL export command. Task texts are escaped. Reloads every 30 s."),
                    "content": {"text/html": {"schema": {"type": "string"}}}}, **errors}}},
            "/pool/{project_id}": {
                "post": {
                    "parameters": [{"name": "project_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "requestBody": json_body({"type": "object", "required": ["pairs"], "properties": {
                        "pairs": {"type": "array", "items": _TASK["properties"]["data"]}}}),
                    "responses": {"200": ok("a chunk of a large project's pool, idempotent by pair_id: "
                                            "{added, already_there, pairs}"), **errors}},
                "get": {
                    "parameters": [{"name": "project_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {"200": ok("{pairs, iteration, model_version, in_label_studio}"), **errors}}},
            "/pool/{project_id}/pairs": {"get": {
                "parameters": [{"name": "project_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": ok("{model_version, pairs: [{data, label}]}: every pool pair with the last "
                                        "training's label, for rlthf export"), **errors}}},
            "/metrics": {"get": {"responses": {"200": ok(
                "per project: iteration, regions, label sources, counters, last training; mistake_model: what the "
                "mistake model learned from the answers {answers, mistakes, prior_sd, weights: [{signal, description, "
                "weight, lower, upper, prior}], explanation}; draws (queue and control pairs served and answered); "
                "estimates: live estimates from the control draws, each {value, lower, upper, n, confidence, method} "
                "(ai_accuracy, control_overturn, queue_precision, queue_minus_control, mistake_auc, pool_accuracy; "
                "value null until a control draw is answered); estimate_warnings: plain-words warnings (the mistake "
                "model's ranking not shown to beat chance, the queue not credibly better than random draws)")}}},
        },
    }
