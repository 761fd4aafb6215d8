"""The CreditFlow platform object: settings, database, clock, catalogs and the services over them.

API, CLI, scheduler and tests each build one and call its services; nothing else holds state.
"""

from __future__ import annotations

from engine.catalog.changes import CATALOG_TRAIL
from engine.clock import Clock
from engine.config import Settings
from engine.forms.catalog import FormCatalog
from engine.jobs.housekeeping import HOUSEKEEPING, housekeep
from engine.jobs.queue import JobQueue
from engine.jobs.start_timers import START_TIMER, fire_start_timer
from engine.jobs.timers import fire_timer
from engine.masking import quiet_workflow_loggers
from engine.notify.delivery import deliver
from engine.notify.destinations import DestinationPolicy
from engine.notify.outbox import DELIVER
from engine.org.changes import ORG_TRAIL
from engine.rules.engine import RuleEngine
from engine.runtime.connectors import ConnectorRegistry
from engine.runtime.demo_connectors import register_demo_connectors
from engine.runtime.sandbox import RestrictedEnvironment, ScriptLimits, check_source
from engine.runtime.workflow_state import CreditFlowScriptEngine
from engine.services.absences import AbsenceService
from engine.services.api_keys import ApiKeyService
from engine.services.archives import ARCHIVE_RENEW, ArchiveService, archive_instance, renew_archive
from engine.services.auth import AuthService
from engine.services.calendars import CalendarService
from engine.services.change_trails import ChangeTrailService
from engine.services.definitions import DefinitionService
from engine.services.documents import DocumentService, register_contract_connectors
from engine.services.escalation_log import EscalationLog
from engine.services.execution import ARCHIVE, TIMER
from engine.services.form_snapshots import FormSnapshots
from engine.services.incidents import IncidentService
from engine.services.instances import InstanceService
from engine.services.lpr_quotes import LprQuoteService
from engine.services.monitor import MonitorService
from engine.services.notifications import NotificationService
from engine.services.opinions import OpinionService
from engine.services.organization import OrganizationService
from engine.services.products import ProductService
from engine.services.publication_requests import PublicationRequestService
from engine.services.rule_trials import RuleTrials
from engine.services.spec_cache import SpecCache
from engine.services.tasks import TaskService
from engine.services.webhooks import WebhookService
from engine.services.workflow_cache import WorkflowCache
from engine.sla.escalation import ESCALATE, escalate
from engine.store.db import Database


class CreditFlow:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        connectors: ConnectorRegistry | None = None,
        database: Database | None = None,
    ) -> None:
        quiet_workflow_loggers()
        self.settings = settings
        self.clock = clock or Clock()
        self.db = database or Database(settings.database_url, lock_wait_ms=settings.lock_wait_ms)
        self.forms = FormCatalog(settings.forms_dir)
        if connectors is None:
            connectors = ConnectorRegistry()
            register_demo_connectors(connectors)
        self.connectors = connectors
        self.lpr_quotes = LprQuoteService(self)
        self.documents = DocumentService(self)
        self.archives = ArchiveService(self)
        register_contract_connectors(connectors, self.documents)
        self.rules = RuleEngine()
        self.script_engine = CreditFlowScriptEngine(
            RestrictedEnvironment(limits=ScriptLimits(max_seconds=settings.script_max_seconds)), connectors, self.rules
        )
        self.form_snapshots = FormSnapshots()
        self.specs = SpecCache(self.form_snapshots)
        self.workflows = WorkflowCache()
        self.auth = AuthService(self)
        self.definitions = DefinitionService(self)
        self.instances = InstanceService(self)
        self.tasks = TaskService(self)
        self.opinions = OpinionService(self)
        self.products = ProductService(self)
        self.publication_requests = PublicationRequestService(self)
        self.rule_trials = RuleTrials(self)
        self.catalog_changes = ChangeTrailService(self, CATALOG_TRAIL)
        self.org_changes = ChangeTrailService(self, ORG_TRAIL)
        self.calendars = CalendarService(self)
        self.organization = OrganizationService(self)
        self.absences = AbsenceService(self)
        self.api_keys = ApiKeyService(self)
        self.monitor = MonitorService(self)
        self.notifications = NotificationService(self)
        self.escalation_log = EscalationLog(self)
        self.webhook_destinations = DestinationPolicy.of(settings.webhook_networks)
        self.webhooks = WebhookService(self)
        self.incidents = IncidentService(self)
        self.jobs = JobQueue(self)
        self.jobs.register(TIMER, fire_timer)
        self.jobs.register(START_TIMER, fire_start_timer)
        self.jobs.register(ESCALATE, escalate)
        self.jobs.register(DELIVER, deliver)
        self.jobs.register(ARCHIVE, archive_instance)
        self.jobs.register(ARCHIVE_RENEW, renew_archive)
        self.jobs.register(HOUSEKEEPING, housekeep)

    @staticmethod
    def check_expression(source: str, mode: str) -> str | None:
        """Deploy-time lint: the reason the sandbox would refuse ``source``, or None."""
        return check_source(source, mode)

    def close(self) -> None:
        self.db.dispose()
