"""Every notification message and scheduled-task handler, imported in one place.

The app and the worker both import this module, so a notification recorded by one is understood by
the other. A domain adds its own ``messages.py`` (``@notifications.messages.register(...)``) and, for
follow-ups, its scheduler handlers (``@scheduler.service.handler(...)``), and lists them here.
"""

import backend.domains.notifications.messages  # noqa: F401
import backend.domains.repair_orders.messages  # noqa: F401
import backend.domains.scheduler.service  # noqa: F401
import backend.domains.service_booking.messages  # noqa: F401
import backend.domains.test_drives.messages  # noqa: F401
import backend.domains.test_drives.service  # noqa: F401 - its follow-up handlers
