// `npm run demo` runs main.ts; these are the reusable pieces (bench scripts may start the same cluster).
export { startDemoCluster, REGION, type DemoCluster, type DemoClusterOptions, type DemoHost } from './cluster.js';
export { ClusterFollower, type FollowedSims, type FollowerHandlers } from './follow.js';
export { compactLogLine, Daemon, DaemonExitedError, runCli, REPO_ROOT, type CliResult } from '../testing/proc.js';
export { checkAttachmentHistory, holds, HoldTracker, type SafetyViolation } from './safety.js';
export {
  entryKey,
  formatEntry,
  formatMilestones,
  formatOffset,
  formatTimeline,
  fromAttachment,
  fromEvent,
  fromJournal,
  fromMetadataChange,
  fromReport,
  hostLabel,
  isEchoOfJournal,
  mergeEntries,
  milestones,
  type FailoverMilestones,
  type TimelineEntry,
  type TimelineSource,
} from './timeline.js';
