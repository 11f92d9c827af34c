# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The base class of this collection's cloud modules.

It is openstack.cloud's ``OpenStackModule``, so our modules take the same auth
options (``cloud``, ``auth``, ``auth_type``, ``region_name``, ``validate_certs``,
``interface``, ``timeout``, ``sdk_log_*``, ...), connect the same way (including
AWX's OpenStack credential: a clouds.yaml named by ``OS_CLIENT_CONFIG_FILE`` and
``cloud`` left unset) and document them with the ``openstack.cloud.openstack``
doc fragment. What we add: check mode on by default, and failures that name the
HTTP status and request id of a failed API call instead of a traceback.
"""

from __future__ import annotations

import importlib
import traceback
import types
import warnings

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
)

from ._errors import describe_sdk_error


def make_sdk_version_visible() -> None:
    """Let openstack.cloud < 2.6 read ``openstack.version.__version__``.

    openstacksdk >= 4.15 no longer imports that (deprecated) submodule, and the
    OpenStackModule of openstack.cloud 2.0 to 2.5 (bundled with the ``ansible``
    12 package) then fails every module with "module 'openstack' has no
    attribute 'version'".
    """
    try:
        sdk = importlib.import_module("openstack")
    except ImportError:
        return  # OpenStackModule reports the missing library itself
    if hasattr(sdk, "version"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            importlib.import_module("openstack.version")
            return
        except ImportError:
            pass
    from importlib.metadata import version as distribution_version

    sdk.version = types.SimpleNamespace(__version__=distribution_version("openstacksdk"))


class LifecycleModule(OpenStackModule):
    """Subclass, set ``argument_spec`` (and ``module_kwargs`` if needed), write ``run()``.

    ``run()`` returns the result dict (it must hold ``changed``) or calls
    ``self.exit_json``/``self.fail_json`` itself.
    """

    module_kwargs = {"supports_check_mode": True}
    module_min_sdk_version = "1.0.0"

    def openstack_cloud_from_module(self):
        make_sdk_version_visible()
        return super().openstack_cloud_from_module()

    def __call__(self):
        # keystoneauth's errors (connection refused, TLS, auth) are not SDK
        # exceptions but just as much "the cloud said no".
        try:
            keystoneauth_error = importlib.import_module("keystoneauth1.exceptions").ClientException
        except ImportError:
            keystoneauth_error = self.sdk.exceptions.SDKException
        try:
            results = self.run()
        except (self.sdk.exceptions.SDKException, keystoneauth_error) as error:
            self.fail_json(
                msg=describe_sdk_error(error),
                exception=traceback.format_exc(),
            )
        except Exception as error:  # pylint: disable=broad-except
            # Whatever goes wrong, the operator gets a message, not a crash;
            # the traceback is kept for -vvv.
            self.fail_json(
                msg="%s failed unexpectedly: %s: %s"
                % (self.module_name, type(error).__name__, error),
                exception=traceback.format_exc(),
            )
        if results is None:
            results = self.results
        self.exit_json(**results)
