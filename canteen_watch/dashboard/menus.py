"""Which pages each role gets.

The menu is built from this table after login; a page that is not in a role's menu is not even
registered with ``st.navigation`` for that session, and every page checks the table again before
it renders. Buttons inside the pages are a convenience: the service functions they call refuse
anything the user's role or jurisdiction does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from canteen_watch.auth import Role

PAGES_DIR = Path(__file__).resolve().parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    """One page of the dashboard."""

    id: str
    file: str
    title_key: str
    icon: str
    roles: frozenset[Role]

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file


R = Role
PAGE_SPECS: tuple[PageSpec, ...] = (
    PageSpec("overview", "overview.py", "page.overview", ":material/dashboard:", frozenset({R.INSPECTOR, R.ADMIN})),
    PageSpec("review", "review.py", "page.review", ":material/fact_check:", frozenset({R.MANAGER, R.INSPECTOR, R.ADMIN})),
    PageSpec("rectification", "rectification.py", "page.rectification", ":material/build:", frozenset({R.MANAGER, R.INSPECTOR, R.ADMIN})),
    PageSpec("cameras", "cameras.py", "page.cameras", ":material/videocam:", frozenset({R.INSPECTOR, R.MANAGER, R.ADMIN})),
    PageSpec("institutions", "institutions.py", "page.institutions", ":material/domain:", frozenset({R.REGISTRAR, R.INSPECTOR, R.ADMIN})),
    PageSpec("audit", "audit.py", "page.audit", ":material/verified:", frozenset({R.AUDITOR, R.ADMIN})),
    PageSpec("models", "models.py", "page.models", ":material/model_training:", frozenset({R.ADMIN, R.AUDITOR})),
)
SPECS_BY_ID = {spec.id: spec for spec in PAGE_SPECS}


def pages_for(role: Role) -> list[PageSpec]:
    """The pages of ``role``, in menu order (the first is the landing page)."""
    return [spec for spec in PAGE_SPECS if role in spec.roles]


def may_open(role: Role, page_id: str) -> bool:
    """True when ``page_id`` is in the menu of ``role``."""
    spec = SPECS_BY_ID.get(page_id)
    return spec is not None and role in spec.roles
