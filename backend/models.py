"""Every table, imported in one place for Alembic and the tests."""

from backend.domains.accounts.models import ApiKey, StaffUser
from backend.domains.audit.models import AuditEntry
from backend.domains.branches.models import Branch, DealerGroup
from backend.domains.system.models import SystemSetting
from backend.lib.db import metadata

__all__ = ["ApiKey", "AuditEntry", "Branch", "DealerGroup", "StaffUser", "SystemSetting", "metadata"]
