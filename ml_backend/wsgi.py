"""WSGI entry for production servers: ``waitress-serve ml_backend.wsgi:app`` or ``gunicorn ml_backend.wsgi:app``.

Configured from the environment (``MODEL_DIR``, ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``,
``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``, ``RLTHF_*``; see docs/backend.md). Each process starts its own
training thread; the per-project file lock keeps two processes from training one project at once.
"""

import logging
import os

from ml_backend.app import create_app

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)
app = create_app()
