"""Workflow settings: severity tiers, folding window, notifications and the login policy.

The lead hangs :class:`WorkflowSettings` off ``Settings`` as ``workflows``; every field has a
title and description, and unknown keys are refused (``extra="forbid"``) like the rest of the
configuration. Defaults:

* tier 1, pests: rectify within 24 h (red 24 h after that);
* tier 2, open storage and no mask: 72 h (red 48 h after);
* tier 3, no hat: by the next routine inspection, 7 days (red 7 days after).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(_Strict):
    """One severity tier: which labels belong to it and how long a site has to rectify."""

    tier: int = Field(title="Tier", description="Tier number; 1 is the most severe.", ge=1, le=9)
    title: str = Field(title="Title", description="Name shown on the dashboard and in reports.", min_length=1, max_length=100)
    labels: list[str] = Field(title="Labels", description="Classifier labels that open violations of this tier.", min_length=1)
    deadline_hours: float = Field(title="Deadline (h)", description="Hours from the first detection until rectification is due.", gt=0)
    red_after_hours: float = Field(title="Red after (h)", description="Hours past the deadline after which an overdue case turns from yellow to red.", gt=0)

    @property
    def deadline(self) -> timedelta:
        """The rectification deadline as a timedelta."""
        return timedelta(hours=self.deadline_hours)

    @property
    def red_after(self) -> timedelta:
        """The further period before red escalation."""
        return timedelta(hours=self.red_after_hours)


DEFAULT_TIERS = (
    TierConfig(tier=1, title="Pests", labels=["pest"], deadline_hours=24, red_after_hours=24),
    TierConfig(tier=2, title="Open storage and no mask", labels=["open_storage", "no_mask"], deadline_hours=72, red_after_hours=48),
    TierConfig(tier=3, title="No hat (next routine inspection)", labels=["no_hat"], deadline_hours=7 * 24, red_after_hours=7 * 24),
)


class NotificationSettings(_Strict):
    """Delivery of the notification outbox to webhooks and MQTT."""

    max_attempts: int = Field(50, title="Maximum attempts", description="Attempts before a notification is marked dead (with the default backoff about 12 hours).", ge=1, le=1000)
    backoff_base_seconds: float = Field(30.0, title="Backoff base (s)", description="Delay after the first failure; doubled after each further failure.", gt=0)
    backoff_max_seconds: float = Field(900.0, title="Backoff cap (s)", description="Longest delay between two attempts.", gt=0)
    timeout_seconds: float = Field(10.0, title="Timeout (s)", description="Connect and read timeout of one delivery attempt.", gt=0, le=120)
    claim_seconds: float = Field(300.0, title="Claim lease (s)", description="How long a claimed notification is left to one worker before another may retry it.", gt=0)
    batch_size: int = Field(100, title="Batch size", description="Notifications delivered per run of deliver_due.", ge=1, le=10000)
    mqtt_host: str | None = Field(None, title="MQTT broker host", description="Broker for MQTT endpoints; empty disables MQTT delivery.")
    mqtt_port: int = Field(1883, title="MQTT broker port", description="Broker port.", ge=1, le=65535)
    mqtt_username: str | None = Field(None, title="MQTT user name", description="Broker login, if it needs one.")
    mqtt_password: SecretStr | None = Field(None, title="MQTT password", description="Broker password (prefer the CANTEEN_WATCH_WORKFLOWS__NOTIFICATIONS__MQTT_PASSWORD variable).")
    mqtt_qos: int = Field(1, title="MQTT QoS", description="Quality of service of published notifications (1: at least once).", ge=0, le=2)


class LoginPolicy(_Strict):
    """Rate limiting of failed logins (stored in the database, so it holds across processes)."""

    max_failures: int = Field(5, title="Failures before lock", description="Failed logins within the window that lock the account.", ge=1, le=100)
    window_minutes: float = Field(15.0, title="Window (min)", description="Window in which failures are counted.", gt=0)
    lockout_minutes: float = Field(15.0, title="Lockout (min)", description="How long a locked account refuses logins.", gt=0)
    min_password_length: int = Field(10, title="Minimum password length", description="Shortest password accepted for a new or changed password.", ge=8, le=128)


class WorkflowSettings(_Strict):
    """The closed loop: folding detections into violations, deadlines, escalation, notifications."""

    fold_window_minutes: float = Field(30.0, title="Fold window (min)", description="Detections of one label on one camera this close together fold into one violation.", gt=0, le=7 * 24 * 60)
    min_score: float = Field(0.0, title="Minimum score", description="Detections scoring below this do not open or extend violations.", ge=0, le=1)
    tiers: list[TierConfig] = Field(default_factory=lambda: list(DEFAULT_TIERS), title="Severity tiers", description="Tiers with their labels and deadlines.", min_length=1)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings, title="Notifications", description="Outbox delivery to webhooks and MQTT.")
    login: LoginPolicy = Field(default_factory=LoginPolicy, title="Login policy", description="Failed-login rate limiting and password length.")
    pii_salt: SecretStr | None = Field(None, title="Personal-data salt", description="At least 16 characters; when set, ledger entries commit to personal fields (phone, legal representative, address) with salted hashes. Keep it outside the database.")

    @model_validator(mode="after")
    def _tiers_consistent(self) -> "WorkflowSettings":
        numbers = [t.tier for t in self.tiers]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"duplicate tier numbers: {sorted({n for n in numbers if numbers.count(n) > 1})}")
        labels = [label for t in self.tiers for label in t.labels]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"labels in more than one tier: {', '.join(duplicates)}")
        if self.pii_salt is not None and len(self.pii_salt.get_secret_value()) < 16:
            raise ValueError("pii_salt must be at least 16 characters")
        return self

    @property
    def fold_window(self) -> timedelta:
        """The folding window as a timedelta."""
        return timedelta(minutes=self.fold_window_minutes)

    def tier_for(self, label: str) -> TierConfig | None:
        """The tier of ``label``, or None when the label does not open violations."""
        for tier in self.tiers:
            if label in tier.labels:
                return tier
        return None

    def tier(self, number: int) -> TierConfig:
        """The tier with this number (KeyError naming it when absent)."""
        for tier in self.tiers:
            if tier.tier == number:
                return tier
        raise KeyError(f"no tier {number} in the workflow settings")

    def tier_or_default(self, number: int) -> TierConfig:
        """The tier with this number; for a tier since removed from the configuration, the
        default tier of that number, else the least severe configured tier."""
        for tier in self.tiers:
            if tier.tier == number:
                return tier
        for tier in DEFAULT_TIERS:
            if tier.tier == number:
                return tier
        return max(self.tiers, key=lambda t: t.tier)

    @property
    def salt(self) -> str | None:
        """The personal-data salt as text, or None."""
        return self.pii_salt.get_secret_value() if self.pii_salt is not None else None
