import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { etcdCall } from './etcd.js';

/**
 * Raw lease calls on etcd's lease service. The registrar uses these instead of etcd3's `Lease` class
 * because it must (a) resume a lease by id after a restart and (b) know the time of the last
 * SUCCESSFUL renewal to fence itself before etcd can expire the lease.
 */

/** etcd leases have whole-second TTLs; round up so the lease never lives shorter than asked. */
export function ttlSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

export async function grantLease(client: Etcd3, ttlMs: number, timeoutMs: number): Promise<string> {
  const res = await etcdCall(client, 'lease grant', () =>
    client.leaseClient.leaseGrant({ TTL: ttlSeconds(ttlMs), ID: 0 }, { deadline: Date.now() + timeoutMs }),
  );
  return String(res.ID);
}

/** Remaining TTL in seconds; ≤ 0 when etcd no longer has the lease. */
export async function leaseRemainingSeconds(client: Etcd3, leaseId: string, timeoutMs: number): Promise<number> {
  const res = await etcdCall(client, 'lease time-to-live', () =>
    client.leaseClient.leaseTimeToLive({ ID: leaseId }, { deadline: Date.now() + timeoutMs }),
  );
  return Number(res.TTL);
}

export async function revokeLease(client: Etcd3, leaseId: string, timeoutMs: number): Promise<void> {
  await etcdCall(client, 'lease revoke', () =>
    client.leaseClient.leaseRevoke({ ID: leaseId }, { deadline: Date.now() + timeoutMs }),
  );
}

/**
 * One keepalive round trip. Resolves with the TTL etcd reports (0 = lease unknown to etcd, i.e.
 * expired or revoked), rejects on transport failure or when `timeoutMs` passes without an answer.
 */
export async function keepAliveOnce(client: Etcd3, leaseId: string, timeoutMs: number): Promise<number> {
  return etcdCall(client, 'lease keepalive', async () => {
    const stream = await client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
    try {
      return await new Promise<number>((resolve, reject) => {
        // The grpc deadline also ends the stream, but a wedged connection may never report: our own bound.
        const timer = setTimeout(() => reject(new Error(`keepalive timed out after ${timeoutMs} ms`)), timeoutMs);
        stream.on('data', (res: { TTL: string | number }) => {
          clearTimeout(timer);
          resolve(Number(res.TTL));
        });
        stream.on('error', (err: Error) => {
          clearTimeout(timer);
          reject(err);
        });
        stream.write({ ID: leaseId });
      });
    } finally {
      stream.end();
    }
  });
}

const LeaseState = z.object({ leaseId: z.string().regex(/^\d+$/), instanceId: z.string(), ttlMs: z.number() });
export type LeaseState = z.infer<typeof LeaseState>;

/** The saved lease, or null when the file is missing, unreadable or names another host. */
export function readLeaseState(file: string, instanceId: string): LeaseState | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = LeaseState.safeParse(JSON.parse(text));
    return parsed.success && parsed.data.instanceId === instanceId ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Written via rename so that a crash mid-write never leaves a torn file. */
export function writeLeaseState(file: string, state: LeaseState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, file);
}

export function removeLeaseState(file: string): void {
  rmSync(file, { force: true });
}
