export { DEFAULT_RETENTION, dayBucket, isoWeekBucket, monthBucket, planRetention, retentionPolicy, yearBucket, type KeepReason, type RetentionCandidate, type RetentionDecision, type RetentionPolicy } from './retention.js';
export { runSnapshots, type HeldLock, type LockVolume, type RunSnapshotsOptions, type SnapshotTarget, type VolumeSnapshotResult } from './run.js';
export { TAG_SERVICE, TAG_TIME, TAG_VOLUME, isManagedSnapshot, snapshotTags } from './tags.js';
export { lockGuard, type GuardableLock } from './guard.js';
