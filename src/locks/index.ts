export { connectEtcd, endpointsOf, etcdCall, memberClients, EtcdConnectOptions, DEFAULT_DIAL_TIMEOUT_MS, type MemberClient } from './etcd.js';
export {
  EtcdUnavailableError,
  NotLeaderError,
  LockTimeoutError,
  LockLostError,
  LeaseLostError,
  TxnConflictError,
  isEtcdUnavailable,
  wrapEtcdError,
} from './errors.js';
export { HostRegistrar, type HostRegistrarOptions, type FenceEvent, type FenceDeferredEvent, type RegisteredEvent } from './registrar.js';
export { campaign, currentLeader, observeLeader, type CampaignOptions, type Leadership, type LeaderInfo } from './election.js';
export { guardedTxn, type GuardedOps, type TxnCompare, type LeaderGuard } from './txn.js';
export { acquireVolumeLock, tryAcquireVolumeLock, type VolumeLock, type VolumeLockOptions } from './volume-lock.js';
export { PrefixWatch, type PrefixEvent, type PrefixWatchHandlers } from './watch.js';
export { PrefixMirror, type MirrorChange, type MirrorEvents } from './mirror.js';
export { LeaseClock, monoNow, wallOf } from './lease-clock.js';
