# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: run one of our modules in-process and get its JSON result."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(capsys):
    """Run a module class as its ``main()`` would, with ``args``; return (rc, result)."""

    def _run(module_class, args: dict):
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exited:
                module_class()()
        out = capsys.readouterr().out
        return exited.value.code, json.loads(out)

    return _run


@pytest.fixture
def clean_os_env(monkeypatch, tmp_path):
    """No OS_* variables and no user clouds.yaml leak into a test's cloud config."""
    import os

    for name in list(os.environ):
        if name.startswith("OS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    return tmp_path
