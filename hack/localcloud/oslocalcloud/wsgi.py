"""One gunicorn entry point for every OpenStack API of the local cloud.

oslo.config inside the applications parses ``sys.argv``; under gunicorn that
holds gunicorn's own arguments and the apps fail with "unrecognized
arguments". This module resets ``sys.argv`` before importing the real WSGI
module named by the environment:

  OSOPS_LC_WSGI_MODULE  e.g. ``nova.wsgi.osapi_compute``
  OSOPS_LC_PROG         program name (argv[0])
  OSOPS_LC_ARGV         extra arguments, shell-quoted (e.g. ``--config-file x``)

Used as ``gunicorn oslocalcloud.wsgi:application``.
"""
import importlib
import os
import shlex
import sys

sys.argv = [os.environ.get("OSOPS_LC_PROG", "wsgi")] + shlex.split(
    os.environ.get("OSOPS_LC_ARGV", ""))

application = importlib.import_module(
    os.environ["OSOPS_LC_WSGI_MODULE"]).application
