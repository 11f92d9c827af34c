"""A trivial ML2 mechanism driver: binds every port on its first segment.

The local cloud runs Neutron without agents; without any mechanism driver
able to bind, Nova boots on a network fail with PortBindingFailed. This
driver binds each port with vif_type ``other`` and marks it ACTIVE, so
servers get their fixed IPs. Registered as ``osops_bindall`` through the
``neutron.ml2.mechanism_drivers`` entry point of this package.
"""
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api

VIF_TYPE = "other"


class BindAllMechanismDriver(api.MechanismDriver):

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], VIF_TYPE,
                                {"port_filter": False},
                                status=constants.PORT_STATUS_ACTIVE)
            return
