"""Every table, imported in one place for Alembic and the tests."""

from backend.domains.accounts.models import ApiKey, StaffUser
from backend.domains.audit.models import AuditEntry
from backend.domains.branches.models import Branch, BranchHoliday, DealerGroup
from backend.domains.customers.models import Customer, TrackingLink
from backend.domains.notifications.models import (
    DeliveryAttempt,
    Notification,
    NotificationPreference,
    PushSubscription,
)
from backend.domains.outbox.models import OutboxEvent
from backend.domains.repair_orders.models import (
    RepairOrder,
    RepairOrderClock,
    RepairOrderCounter,
    RepairOrderEvent,
    RepairOrderFinding,
    RepairOrderLabour,
    RepairOrderPart,
    RepairOrderPhoto,
)
from backend.domains.scheduler.models import ScheduledTask
from backend.domains.service_booking.models import (
    BookingIdempotency,
    ServiceAppointment,
    ServiceAppointmentOperation,
    ServiceBay,
    ServiceDayCapacity,
    ServiceOperation,
    ServiceSettings,
    ServiceSlotCapacity,
    ServiceTechnician,
    ServiceVehicle,
)
from backend.domains.stock.models import (
    Vehicle,
    VehicleFacetCount,
    VehicleImport,
    VehicleImportRejection,
    VehiclePhoto,
    VehiclePublicFacetCount,
    VehicleReservation,
)
from backend.domains.system.models import SystemSetting
from backend.domains.test_drives.models import (
    Lead,
    SalespersonHours,
    TestDrive,
    TestDriveCar,
    TestDriveModelLength,
    TestDriveSettings,
)
from backend.lib.db import metadata

__all__ = ["ApiKey", "AuditEntry", "Branch", "Customer", "DealerGroup", "DeliveryAttempt", "Notification",
           "NotificationPreference", "OutboxEvent", "PushSubscription", "ScheduledTask", "StaffUser",
           "SystemSetting", "TrackingLink", "Vehicle", "VehicleFacetCount", "VehicleImport",
           "VehicleImportRejection", "VehiclePhoto", "VehiclePublicFacetCount", "VehicleReservation", "metadata"]
__all__ += ["BookingIdempotency", "RepairOrder", "RepairOrderClock", "RepairOrderCounter", "RepairOrderEvent",
            "RepairOrderFinding", "RepairOrderLabour", "RepairOrderPart", "RepairOrderPhoto", "ServiceAppointment",
            "ServiceAppointmentOperation", "ServiceBay", "ServiceDayCapacity", "ServiceOperation", "ServiceSettings",
            "ServiceSlotCapacity", "ServiceTechnician", "ServiceVehicle"]
__all__ += ["BranchHoliday", "Lead", "SalespersonHours", "TestDrive", "TestDriveCar", "TestDriveModelLength",
            "TestDriveSettings"]
