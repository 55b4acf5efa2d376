"""Every route handler of the app, by domain."""

from backend.domains.accounts.api import ApiKeyApi, MeApi
from backend.domains.accounts.controllers import ApiKeyScreenController, LanguageController, SignInController
from backend.domains.audit.controllers import AuditApi, AuditScreenController
from backend.domains.dashboard.controllers import DashboardController
from backend.domains.public.controllers import PublicController
from backend.domains.system.controllers import HealthController, MetricsController

route_handlers = [
    PublicController,
    SignInController,
    LanguageController,
    DashboardController,
    ApiKeyScreenController,
    AuditScreenController,
    HealthController,
    MetricsController,
    MeApi,
    ApiKeyApi,
    AuditApi,
]
