export { DEFAULT_RETENTION, dayBucket, isoWeekBucket, monthBucket, planRetention, retentionPolicy, yearBucket, type KeepReason, type RetentionCandidate, type RetentionDecision, type RetentionPolicy } from './retention.js';
export { planVolume, runSnapshots, type HeldLock, type LockVolume, type RunSnapshotsOptions, type SnapshotTarget, type VolumePlan, type VolumeSnapshotResult } from './run.js';
export { DEFAULT_EVERY_HOURS, describeSchedule, everyHoursOf, parseEvery, retentionFor, slotStart, snapshotDue, type DueDecision, type ScheduleCandidate } from './schedule.js';
export { TAG_SERVICE, TAG_TIME, TAG_VOLUME, isManagedSnapshot, snapshotTags } from './tags.js';
export { lockGuard, type GuardableLock } from './guard.js';
export { renderOverview, snapshotOverview, type OverviewSnapshot, type SnapshotOverview } from './overview.js';
