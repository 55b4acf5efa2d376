"""Every route handler of the app, by domain."""

from backend.domains.accounts.api import ApiKeyApi, MeApi
from backend.domains.accounts.controllers import ApiKeyScreenController, LanguageController, SignInController
from backend.domains.audit.controllers import AuditApi, AuditScreenController
from backend.domains.branches.api import BranchHoursApi
from backend.domains.branches.controllers import BranchHoursController
from backend.domains.customers.controllers import CustomerController
from backend.domains.dashboard.controllers import DashboardController
from backend.domains.notifications.api import NotificationApi, PushSubscriptionApi
from backend.domains.notifications.controllers import MyNotificationsController, NotificationLogController
from backend.domains.public.controllers import PublicController
from backend.domains.repair_orders.api import RepairOrderApi, TrackApi
from backend.domains.repair_orders.controllers import (
    JobsController,
    RepairOrderController,
    ServiceDeskController,
    StaffPhotoController,
    TrackController,
)
from backend.domains.service_booking.api import ServiceApi
from backend.domains.service_booking.controllers import BookingController
from backend.domains.stock.api import VehicleApi
from backend.domains.stock.controllers import StaffStockController, StockController, StockImportController
from backend.domains.system.controllers import HealthController, MetricsController
from backend.domains.test_drives.api import TestDriveApi, TestDriveSetupApi
from backend.domains.test_drives.controllers import (
    TestDriveBookingController,
    TestDriveDeskController,
    TestDriveSetupController,
    TestDriveTrackController,
)

route_handlers = [
    PublicController,
    SignInController,
    LanguageController,
    DashboardController,
    ApiKeyScreenController,
    AuditScreenController,
    CustomerController,
    MyNotificationsController,
    NotificationLogController,
    StockController,
    StaffStockController,
    StockImportController,
    BookingController,
    ServiceDeskController,
    RepairOrderController,
    StaffPhotoController,
    JobsController,
    TrackController,
    TestDriveBookingController,
    TestDriveTrackController,
    TestDriveDeskController,
    BranchHoursController,
    TestDriveSetupController,
    HealthController,
    MetricsController,
    MeApi,
    ApiKeyApi,
    AuditApi,
    PushSubscriptionApi,
    NotificationApi,
    VehicleApi,
    ServiceApi,
    RepairOrderApi,
    TrackApi,
    TestDriveApi,
    BranchHoursApi,
    TestDriveSetupApi,
]
