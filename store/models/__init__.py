"""Every table of the toolkit, importable from one place (Alembic reads ``Base.metadata``)."""

from store.models.base import Base, UTCDateTime
from store.models.campaigns import RUN_FINAL, CampaignRecipient, CampaignRun, RunState
from store.models.engine import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    CronFire,
    Enrollment,
    EnrollmentState,
    MarketingTouch,
    PlaybookVersion,
    StepRun,
    Waiting,
)
from store.models.groups import CustomerGroup, GroupMember
from store.models.inbox import InboxRow, InboxState
from store.models.mass import MASS_FINAL, MassJob, MassRecipient, MassStatus
from store.models.outbox import FINAL_STATES, OutboxRow, OutboxState
from store.models.people import (
    Customer,
    CustomerStaff,
    FollowState,
    MpFollower,
    RemovedBy,
    Staff,
)
from store.models.platform import AccessToken, RefreshRequest
from store.models.processes import ProcessRow
from store.models.ratelimits import RateSpend
from store.models.tags import CustomerTag, Tag, TagSource
from store.models.tasks import Task, TaskState
from store.models.timeline import Direction, Interaction
from store.models.transfers import (
    ITEM_FINAL,
    AuditEntry,
    TransferItem,
    TransferItemKind,
    TransferItemState,
    TransferJob,
    TransferJobState,
    TransferMode,
)

__all__ = [
    "ProcessRow",
    "ITEM_FINAL",
    "AuditEntry",
    "TransferItem",
    "TransferItemKind",
    "TransferItemState",
    "TransferJob",
    "TransferJobState",
    "TransferMode",
    "RUN_FINAL",
    "CampaignRecipient",
    "CampaignRun",
    "RunState",
    "MASS_FINAL",
    "MassJob",
    "MassRecipient",
    "MassStatus",
    "TaskState",
    "Task",
    "Waiting",
    "StepRun",
    "PlaybookVersion",
    "MarketingTouch",
    "EnrollmentState",
    "Enrollment",
    "CronFire",
    "AgendaState",
    "AgendaKind",
    "AgendaItem",
    "FINAL_STATES",
    "AccessToken",
    "Base",
    "Customer",
    "CustomerGroup",
    "CustomerStaff",
    "CustomerTag",
    "Direction",
    "FollowState",
    "GroupMember",
    "InboxRow",
    "InboxState",
    "Interaction",
    "MpFollower",
    "OutboxRow",
    "OutboxState",
    "RateSpend",
    "RefreshRequest",
    "RemovedBy",
    "Staff",
    "Tag",
    "TagSource",
    "UTCDateTime",
]
