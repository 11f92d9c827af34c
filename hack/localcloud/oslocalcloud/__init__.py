"""Local test cloud for osops.lifecycle: a small real OpenStack on 127.0.0.1."""
