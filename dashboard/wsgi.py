"""WSGI entry point: `gunicorn --no-control-socket userpipeline.dashboard.wsgi:server`.

Configuration comes from the environment (see settings.py), e.g. USERPIPELINE_SPEC_FILE for the spec.
"""

from userpipeline.dashboard.app import create_app
from userpipeline.dashboard.settings import DashboardSettings
from userpipeline.jobs.logs import configure_logging

configure_logging()
app = create_app(DashboardSettings.from_env())
server = app.server
