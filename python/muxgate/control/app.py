"""The control plane's Litestar application: the admin API under `/admin/v1`, guarded by the
admin token, and the account's own management API under `/api/v1/management` (with its
insurance claims and routing settings) and case export under `/api/v1/insurance`, guarded by
its API keys; the OpenAPI document and interactive docs of all are at `/admin/v1/schema`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from muxgate.control.accounts.controllers import AccountController
from muxgate.control.catalog.controllers import (
    ChannelController,
    ModelController,
    ProviderController,
)
from muxgate.control.deps import RoutingChanged, provide_changed, provide_store
from muxgate.control.docs import docs_assets, docs_page
from muxgate.control.errors import EXCEPTION_HANDLERS
from muxgate.control.fields import DecimalsAreNumbers
from muxgate.control.guards import admin_guard
from muxgate.control.inputs import StrictRequest, refuse_nul
from muxgate.control.insurance.controllers import CaseController, InsuranceController
from muxgate.control.keys.controllers import KeyController
from muxgate.control.management import ManagementController
from muxgate.control.policies.controllers import (
    InsuranceRuleController,
    RateLimitPolicyController,
)
from muxgate.control.routing.controllers import RoutingSettingsController
from muxgate.control.settings.controllers import SettingsController
from muxgate.store import Store

API_PREFIX = "/admin/v1"
SCHEMA_PATH = f"{API_PREFIX}/schema"
MAX_BODY_BYTES = 1024 * 1024
"""A larger request body is refused with 413 (a control-plane body is a few kilobytes)."""


def create_app(
    store: Store, *, admin_token: str, on_change: Callable[[], Awaitable[None]]
) -> Litestar:
    """The admin API over `store`. `on_change` is awaited after every accepted change the
    routing snapshot depends on (keys, accounts, catalog, insurance rules, ledger entries)."""
    admin = Router(
        path=API_PREFIX,
        route_handlers=[
            AccountController,
            KeyController,
            ProviderController,
            ModelController,
            ChannelController,
            InsuranceRuleController,
            RateLimitPolicyController,
            SettingsController,
        ],
        guards=[admin_guard(admin_token)],
        security=[{"adminToken": []}],
    )
    openapi = OpenAPIConfig(
        title="muxgate admin API",
        version="1",
        path=SCHEMA_PATH,
        render_plugins=[docs_page(SCHEMA_PATH)],
        components=Components(
            security_schemes={
                "adminToken": SecurityScheme(
                    type="http", scheme="bearer", description="The admin token"
                ),
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="One of the account's API keys"
                ),
            }
        ),
        use_handler_docstrings=True,
    )
    app = Litestar(
        route_handlers=[
            admin,
            ManagementController,
            InsuranceController,
            CaseController,
            RoutingSettingsController,
            docs_assets(SCHEMA_PATH),
        ],
        dependencies={
            "store": Provide(provide_store, sync_to_thread=False),
            "changed": Provide(provide_changed, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=StrictRequest,
        before_request=refuse_nul,
        plugins=[DecimalsAreNumbers()],
    )
    app.state.store = store
    app.state.routing_changed = RoutingChanged(on_change)
    return app
