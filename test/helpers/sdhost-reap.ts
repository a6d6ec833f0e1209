import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/** Bookkeeping that lets a later test run clean up hosts whose test process died without stop(). */

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function isMountPoint(path: string): boolean {
  try {
    execFileSync('mountpoint', ['-q', path]);
    return true;
  } catch {
    return false;
  }
}

export function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface HostRecord {
  ownerPid: number;
  pid: number;
  cgroupDir: string;
  disks: { devName: string; loop: string; img: string }[];
}

export const STATE_PREFIX = 'ebs-failover-sdhost-';

/** Unmounts the host's overlay and /run, removes its cgroup and state dir. */
export function unmountAndRemove(stateDir: string, cgroupDir: string): void {
  const merged = join(stateDir, 'merged');
  for (const m of [join(merged, 'run'), merged]) {
    // Lazy unmount: the namespace may still be dying and holding the mount for a moment.
    if (isMountPoint(m)) run('umount', ['-l', m]);
  }
  if (existsSync(cgroupDir)) {
    try {
      execFileSync('find', [cgroupDir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', '+'], { stdio: 'ignore' });
    } catch {
      // cgroups of processes still exiting; the kernel frees them once empty
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
}

/**
 * Cleans up hosts left by test processes that died without stop() (SIGKILLed runner): their
 * systemd, loop devices, mounts and cgroups. Only touches what the record names, and a loop device
 * only while it is still backed by the recorded image.
 */
export function reapStaleHosts(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(STATE_PREFIX)) continue;
    const stateDir = join(tmpdir(), entry);
    let rec: HostRecord;
    try {
      rec = JSON.parse(readFileSync(join(stateDir, 'host.json'), 'utf8')) as HostRecord;
    } catch {
      continue; // being created right now, or not ours
    }
    if (alive(rec.ownerPid)) continue;
    try {
      if (rec.pid && alive(rec.pid) && readFileSync(`/proc/${rec.pid}/cgroup`, 'utf8').includes(basename(rec.cgroupDir))) {
        process.kill(rec.pid, 'SIGKILL');
      }
    } catch {
      // exited meanwhile
    }
    for (const d of rec.disks) {
      try {
        const backing = execFileSync('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', d.loop]).toString().trim();
        if (backing === d.img) run('losetup', ['-d', d.loop]);
      } catch {
        // already detached
      }
    }
    unmountAndRemove(stateDir, rec.cgroupDir);
  }
}

