"""Workflows: users and jurisdictions, care institutions and inspections, violations with
reviews and rectifications, the notification outbox, and retention marks.

Revision ID: 0003_workflows
Revises: 0002_ledger
"""

import sqlalchemy as sa
from alembic import op

# Importing the models registers these tables on Base.metadata, so that schema comparisons in the
# same process (tests/test_db.py) see them even where migrations/env.py does not import them.
from canteen_watch.workflows import models as _workflow_models  # noqa: F401

revision = "0003_workflows"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notification_endpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('scope_level', sa.String(length=16), nullable=False),
    sa.Column('scope_ref', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_endpoints'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=24), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('failure_window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('care_institutions',
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('credit_code', sa.String(length=18), nullable=False),
    sa.Column('licence_no', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('district', sa.String(length=100), nullable=False),
    sa.Column('legal_rep', sa.String(length=50), nullable=False),
    sa.Column('contact_phone', sa.String(length=24), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('serves_meals', sa.Boolean(), nullable=False),
    sa.Column('opening_hours', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_changed_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_care_institutions_created_by_users')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_care_institutions_site_id_sites')),
    sa.ForeignKeyConstraint(['status_changed_by'], ['users.id'], name=op.f('fk_care_institutions_status_changed_by_users')),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_care_institutions')),
    sa.UniqueConstraint('credit_code', name=op.f('uq_care_institutions_credit_code'))
    )
    op.create_index(op.f('ix_care_institutions_district'), 'care_institutions', ['district'], unique=False)
    op.create_index(op.f('ix_care_institutions_licence_no'), 'care_institutions', ['licence_no'], unique=False)
    op.create_index(op.f('ix_care_institutions_status'), 'care_institutions', ['status'], unique=False)
    op.create_table('inspections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('inspected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inspector_id'], ['users.id'], name=op.f('fk_inspections_inspector_id_users')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inspections_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections'))
    )
    op.create_index('ix_inspections_site_at', 'inspections', ['site_id', 'inspected_at'], unique=False)
    op.create_table('user_scopes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_scopes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_scopes')),
    sa.UniqueConstraint('user_id', 'level', 'ref', name='uq_user_scopes_user_level_ref')
    )
    op.create_index(op.f('ix_user_scopes_user_id'), 'user_scopes', ['user_id'], unique=False)
    op.create_table('institution_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('changed_fields', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_institution_events_actor_id_users')),
    sa.ForeignKeyConstraint(['site_id'], ['care_institutions.site_id'], name=op.f('fk_institution_events_site_id_care_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_institution_events'))
    )
    op.create_index('ix_institution_events_site_at', 'institution_events', ['site_id', 'at'], unique=False)
    op.create_table('snapshot_expiry',
    sa.Column('snapshot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('versions_deleted', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_snapshot_expiry_snapshot_id_snapshots')),
    sa.PrimaryKeyConstraint('snapshot_id', name=op.f('pk_snapshot_expiry'))
    )
    op.create_table('violations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detection_count', sa.Integer(), nullable=False),
    sa.Column('max_score', sa.Float(), nullable=False),
    sa.Column('first_snapshot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('last_snapshot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('review_outcome', sa.String(length=16), nullable=True),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.Integer(), nullable=True),
    sa.Column('rectification_round', sa.Integer(), nullable=False),
    sa.Column('evidence_hold', sa.Boolean(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('hold_set_by', sa.Integer(), nullable=True),
    sa.Column('hold_set_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], name=op.f('fk_violations_camera_id_cameras')),
    sa.ForeignKeyConstraint(['first_snapshot_id'], ['snapshots.id'], name=op.f('fk_violations_first_snapshot_id_snapshots')),
    sa.ForeignKeyConstraint(['hold_set_by'], ['users.id'], name=op.f('fk_violations_hold_set_by_users')),
    sa.ForeignKeyConstraint(['last_snapshot_id'], ['snapshots.id'], name=op.f('fk_violations_last_snapshot_id_snapshots')),
    sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], name=op.f('fk_violations_reviewed_by_users')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_violations_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_violations'))
    )
    op.create_index('ix_violations_fold', 'violations', ['camera_id', 'label', 'last_seen_at'], unique=False)
    op.create_index('ix_violations_site_opened', 'violations', ['site_id', 'opened_at'], unique=False)
    op.create_index('ix_violations_state_due', 'violations', ['state', 'due_at'], unique=False)
    op.create_table('notification_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('violation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['notification_endpoints.id'], name=op.f('fk_notification_outbox_endpoint_id_notification_endpoints')),
    sa.ForeignKeyConstraint(['violation_id'], ['violations.id'], name=op.f('fk_notification_outbox_violation_id_violations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notification_outbox_idempotency_key'))
    )
    op.create_index('ix_notification_outbox_due', 'notification_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_notification_outbox_endpoint_id'), 'notification_outbox', ['endpoint_id'], unique=False)
    op.create_index(op.f('ix_notification_outbox_violation_id'), 'notification_outbox', ['violation_id'], unique=False)
    op.create_table('rectifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('violation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('submitted_by', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('photo_bucket', sa.String(length=63), nullable=False),
    sa.Column('photo_key', sa.String(length=500), nullable=False),
    sa.Column('photo_version_id', sa.String(length=200), nullable=True),
    sa.Column('photo_sha256', sa.String(length=64), nullable=False),
    sa.Column('photo_size', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('checked_by', sa.Integer(), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('check_note', sa.Text(), nullable=True),
    sa.Column('photo_expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['checked_by'], ['users.id'], name=op.f('fk_rectifications_checked_by_users')),
    sa.ForeignKeyConstraint(['submitted_by'], ['users.id'], name=op.f('fk_rectifications_submitted_by_users')),
    sa.ForeignKeyConstraint(['violation_id'], ['violations.id'], name=op.f('fk_rectifications_violation_id_violations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rectifications')),
    sa.UniqueConstraint('violation_id', 'round', name='uq_rectifications_violation_round')
    )
    op.create_index(op.f('ix_rectifications_violation_id'), 'rectifications', ['violation_id'], unique=False)
    op.create_table('violation_detections',
    sa.Column('detection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('violation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('snapshot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['detection_id'], ['detections.id'], name=op.f('fk_violation_detections_detection_id_detections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_violation_detections_snapshot_id_snapshots')),
    sa.ForeignKeyConstraint(['violation_id'], ['violations.id'], name=op.f('fk_violation_detections_violation_id_violations')),
    sa.PrimaryKeyConstraint('detection_id', name=op.f('pk_violation_detections'))
    )
    op.create_index(op.f('ix_violation_detections_snapshot_id'), 'violation_detections', ['snapshot_id'], unique=False)
    op.create_index(op.f('ix_violation_detections_violation_id'), 'violation_detections', ['violation_id'], unique=False)
    op.create_table('violation_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('violation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=24), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_violation_reviews_user_id_users')),
    sa.ForeignKeyConstraint(['violation_id'], ['violations.id'], name=op.f('fk_violation_reviews_violation_id_violations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_violation_reviews'))
    )
    op.create_index(op.f('ix_violation_reviews_violation_id'), 'violation_reviews', ['violation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_violation_reviews_violation_id'), table_name='violation_reviews')
    op.drop_table('violation_reviews')
    op.drop_index(op.f('ix_violation_detections_violation_id'), table_name='violation_detections')
    op.drop_index(op.f('ix_violation_detections_snapshot_id'), table_name='violation_detections')
    op.drop_table('violation_detections')
    op.drop_index(op.f('ix_rectifications_violation_id'), table_name='rectifications')
    op.drop_table('rectifications')
    op.drop_index(op.f('ix_notification_outbox_violation_id'), table_name='notification_outbox')
    op.drop_index(op.f('ix_notification_outbox_endpoint_id'), table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_due', table_name='notification_outbox')
    op.drop_table('notification_outbox')
    op.drop_index('ix_violations_state_due', table_name='violations')
    op.drop_index('ix_violations_site_opened', table_name='violations')
    op.drop_index('ix_violations_fold', table_name='violations')
    op.drop_table('violations')
    op.drop_table('snapshot_expiry')
    op.drop_index('ix_institution_events_site_at', table_name='institution_events')
    op.drop_table('institution_events')
    op.drop_index(op.f('ix_user_scopes_user_id'), table_name='user_scopes')
    op.drop_table('user_scopes')
    op.drop_index('ix_inspections_site_at', table_name='inspections')
    op.drop_table('inspections')
    op.drop_index(op.f('ix_care_institutions_status'), table_name='care_institutions')
    op.drop_index(op.f('ix_care_institutions_licence_no'), table_name='care_institutions')
    op.drop_index(op.f('ix_care_institutions_district'), table_name='care_institutions')
    op.drop_table('care_institutions')
    op.drop_table('users')
    op.drop_table('notification_endpoints')
