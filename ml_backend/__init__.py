"""Label Studio ML backend for RLTHF: AI prelabels, automatic flips and a prioritised human queue.

``create_app(config)`` builds the Flask app (:mod:`ml_backend.app`); ``ml_backend.wsgi:app`` is the WSGI
entry; ``rlthf serve`` runs it. Every Label Studio call lives in :mod:`ml_backend.label_studio_client`.
"""


def create_app(*args, **kwargs):
    """See :func:`ml_backend.app.create_app` (imported lazily so that ``import ml_backend`` stays light)."""
    from ml_backend.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
