// `npm run demo` runs main.ts; these are the reusable pieces. The world itself is src/testing/world.ts.
export { startDemoCluster, type DemoCluster, type DemoClusterOptions } from './cluster.js';
export { ClusterFollower, type FollowedSims, type FollowerHandlers } from './follow.js';
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
